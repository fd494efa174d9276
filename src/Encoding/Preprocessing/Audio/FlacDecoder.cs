using System.Buffers.Binary;

namespace FreeBind.Encoding.Preprocessing.Audio;

/// <summary>
/// Native FLAC decoder (RFC 9639): NuGet serves no maintained FLAC decoder, and a managed one avoids
/// a subprocess per item. Verifies the header CRC-8 and frame CRC-16 so corruption is reported, not
/// decoded into noise.
/// </summary>
internal static class FlacDecoder
{
    public static bool Sniff(ReadOnlySpan<byte> b) => b.Length >= 4 && b[..4].SequenceEqual("fLaC"u8);

    public static DecodedAudio Decode(ReadOnlySpan<byte> bytes, AudioLimits limits)
    {
        var pos = 4;
        var haveInfo = false;
        int infoRate = 0, infoChannels = 0, infoBits = 0, maxBlock = 0;
        long totalSamples = 0;
        while (true)
        {
            if (pos + 4 > bytes.Length) throw new MediaException(MediaErrorKind.Truncated, "FLAC ends inside its metadata");
            var header = bytes[pos];
            var length = bytes[pos + 1] << 16 | bytes[pos + 2] << 8 | bytes[pos + 3];
            pos += 4;
            if (pos + length > bytes.Length) throw new MediaException(MediaErrorKind.Truncated, "FLAC metadata block runs past the end of the file");
            if ((header & 0x7F) == 0)
            {
                if (length < 34) throw new MediaException(MediaErrorKind.CorruptData, "FLAC STREAMINFO is shorter than 34 bytes");
                var s = bytes.Slice(pos, 34);
                maxBlock = BinaryPrimitives.ReadUInt16BigEndian(s[2..]);
                var packed = BinaryPrimitives.ReadUInt64BigEndian(s[10..]);
                infoRate = (int)(packed >> 44);
                infoChannels = (int)((packed >> 41) & 7) + 1;
                infoBits = (int)((packed >> 36) & 31) + 1;
                totalSamples = (long)(packed & 0xF_FFFF_FFFF);
                haveInfo = true;
            }
            pos += length;
            if ((header & 0x80) != 0) break;
        }
        if (!haveInfo) throw new MediaException(MediaErrorKind.CorruptData, "FLAC has no STREAMINFO block");
        limits.CheckFormat(infoRate, infoChannels, "FLAC");
        if (infoBits < 4 || infoBits > 32) throw new MediaException(MediaErrorKind.UnsupportedFormat, $"FLAC with {infoBits} bits per sample is not supported");
        if (totalSamples > 0) limits.CheckFrames(totalSamples, infoRate, "FLAC");

        var capacity = (int)Math.Min(totalSamples > 0 ? totalSamples : 1 << 16, (long)(limits.MaxSeconds * infoRate) + 1);
        var output = new float[infoChannels][];
        for (var c = 0; c < infoChannels; c++) output[c] = new float[Math.Max(capacity, 1)];
        var frames = 0;
        var block = new long[infoChannels][];
        for (var c = 0; c < infoChannels; c++) block[c] = new long[Math.Max(maxBlock, 16)];
        var scale = 1.0 / (1L << (infoBits - 1));

        while (pos < bytes.Length)
        {
            // Trailing tags (ID3v1 etc.) or padding after the last frame are not frames.
            if (pos + 2 > bytes.Length || bytes[pos] != 0xFF || (bytes[pos + 1] & 0xFE) != 0xF8)
            {
                if (frames == 0) throw new MediaException(MediaErrorKind.CorruptData, "FLAC frame sync code not found after the metadata");
                break;
            }
            var reader = new BitReader(bytes, pos);
            var size = DecodeFrame(ref reader, infoRate, infoChannels, infoBits, ref block);
            var blockSize = size;
            if ((long)frames + blockSize > (long)(limits.MaxSeconds * infoRate))
                limits.CheckFrames((long)frames + blockSize, infoRate, "FLAC");
            if (frames + blockSize > output[0].Length)
                for (var c = 0; c < infoChannels; c++) Array.Resize(ref output[c], Math.Max(output[c].Length * 2, frames + blockSize));
            for (var c = 0; c < infoChannels; c++)
            {
                var src = block[c];
                var dst = output[c].AsSpan(frames, blockSize);
                for (var i = 0; i < blockSize; i++) dst[i] = (float)(src[i] * scale);
            }
            frames += blockSize;
            pos = reader.BytePosition;
        }
        if (frames == 0) throw new MediaException(MediaErrorKind.EmptyAudio, "FLAC stream holds no audio frames");
        for (var c = 0; c < infoChannels; c++)
            if (output[c].Length != frames) Array.Resize(ref output[c], frames);
        return new DecodedAudio(infoRate, output);
    }

    private static int DecodeFrame(ref BitReader r, int infoRate, int infoChannels, int infoBits, ref long[][] block)
    {
        var start = r.BytePosition;
        r.Read(15); // sync code and reserved bit, checked by the caller
        r.Read(1); // blocking strategy: fixed or variable, irrelevant when decoding sequentially
        var sizeCode = (int)r.Read(4);
        var rateCode = (int)r.Read(4);
        var assignment = (int)r.Read(4);
        var bitsCode = (int)r.Read(3);
        r.Read(1);
        // Frame or sample number, UTF-8 style: only its length matters here.
        var first = (int)r.Read(8);
        var extra = first < 0x80 ? 0 : first >= 0xFE ? 6 : first >= 0xFC ? 5 : first >= 0xF8 ? 4 : first >= 0xF0 ? 3 : first >= 0xE0 ? 2 : first >= 0xC0 ? 1 : -1;
        if (extra < 0) throw Corrupt("bad frame number encoding");
        for (var i = 0; i < extra; i++)
            if ((r.Read(8) & 0xC0) != 0x80) throw Corrupt("bad frame number encoding");
        var blockSize = sizeCode switch
        {
            0 => throw Corrupt("reserved block size code"),
            1 => 192,
            >= 2 and <= 5 => 576 << (sizeCode - 2),
            6 => (int)r.Read(8) + 1,
            7 => (int)r.Read(16) + 1,
            _ => 256 << (sizeCode - 8),
        };
        switch (rateCode)
        {
            case 12: r.Read(8); break;
            case 13 or 14: r.Read(16); break;
            case 15: throw Corrupt("invalid sample rate code");
        }
        // A frame may not change the stream's rate: one DecodedAudio has one rate.
        var bits = bitsCode switch
        {
            0 => infoBits,
            1 => 8,
            2 => 12,
            4 => 16,
            5 => 20,
            6 => 24,
            7 => 32,
            _ => throw Corrupt("reserved sample size code"),
        };
        if (bits != infoBits) throw Corrupt($"frame has {bits} bits per sample but STREAMINFO says {infoBits}");
        var channels = assignment < 8 ? assignment + 1 : assignment <= 10 ? 2 : throw Corrupt("reserved channel assignment");
        if (channels != infoChannels) throw Corrupt($"frame has {channels} channels but STREAMINFO says {infoChannels}");
        var headerEnd = r.BytePosition;
        var crc8 = (int)r.Read(8);
        if (Crc8(r.Source[start..headerEnd]) != crc8) throw Corrupt("frame header CRC-8 mismatch");
        _ = infoRate;

        if (block[0].Length < blockSize)
            for (var c = 0; c < channels; c++) block[c] = new long[blockSize];
        for (var c = 0; c < channels; c++)
        {
            // The side channel of a stereo decorrelation carries one extra bit.
            var sideBit = (assignment == 8 && c == 1) || (assignment == 9 && c == 0) || (assignment == 10 && c == 1) ? 1 : 0;
            DecodeSubframe(ref r, bits + sideBit, block[c].AsSpan(0, blockSize));
        }
        r.AlignToByte();
        var frameEnd = r.BytePosition;
        var crc16 = (int)r.Read(16);
        if (Crc16(r.Source[start..frameEnd]) != crc16) throw Corrupt("frame CRC-16 mismatch");

        if (assignment >= 8)
        {
            var a = block[0].AsSpan(0, blockSize);
            var b = block[1].AsSpan(0, blockSize);
            for (var i = 0; i < blockSize; i++)
            {
                switch (assignment)
                {
                    case 8: b[i] = a[i] - b[i]; break; // left/side
                    case 9: a[i] += b[i]; break; // side/right
                    default:
                        var mid = (a[i] << 1) | (b[i] & 1);
                        var side = b[i];
                        a[i] = (mid + side) >> 1;
                        b[i] = (mid - side) >> 1;
                        break;
                }
            }
        }
        return blockSize;
    }

    private static void DecodeSubframe(ref BitReader r, int bits, Span<long> output)
    {
        if (r.Read(1) != 0) throw Corrupt("subframe padding bit is set");
        var type = (int)r.Read(6);
        var wasted = 0;
        if (r.Read(1) == 1)
        {
            wasted = 1;
            while (r.Read(1) == 0) wasted++;
            if (wasted >= bits) throw Corrupt("wasted bits exceed the sample size");
            bits -= wasted;
        }
        if (type == 0)
        {
            output.Fill(r.ReadSigned(bits));
        }
        else if (type == 1)
        {
            for (var i = 0; i < output.Length; i++) output[i] = r.ReadSigned(bits);
        }
        else if (type is >= 8 and <= 12)
        {
            var order = type - 8;
            if (order > output.Length) throw Corrupt("predictor order exceeds the block size");
            for (var i = 0; i < order; i++) output[i] = r.ReadSigned(bits);
            DecodeResidual(ref r, order, output);
            RestoreFixed(order, output);
        }
        else if (type >= 32)
        {
            var order = type - 31;
            if (order > output.Length) throw Corrupt("predictor order exceeds the block size");
            for (var i = 0; i < order; i++) output[i] = r.ReadSigned(bits);
            var precision = (int)r.Read(4) + 1;
            if (precision == 16) throw Corrupt("invalid LPC coefficient precision");
            var shift = (int)r.ReadSigned(5);
            if (shift < 0) throw Corrupt("negative LPC shift");
            Span<long> coefs = stackalloc long[32];
            for (var i = 0; i < order; i++) coefs[i] = r.ReadSigned(precision);
            DecodeResidual(ref r, order, output);
            for (var i = order; i < output.Length; i++)
            {
                long sum = 0;
                for (var j = 0; j < order; j++) sum += coefs[j] * output[i - 1 - j];
                output[i] += sum >> shift;
            }
        }
        else
        {
            throw Corrupt($"reserved subframe type {type}");
        }
        if (wasted > 0)
            for (var i = 0; i < output.Length; i++) output[i] <<= wasted;
    }

    private static void RestoreFixed(int order, Span<long> x)
    {
        // Fixed predictors are repeated differencing; undo by the matching polynomial.
        for (var i = order; i < x.Length; i++)
        {
            x[i] += order switch
            {
                0 => 0,
                1 => x[i - 1],
                2 => 2 * x[i - 1] - x[i - 2],
                3 => 3 * x[i - 1] - 3 * x[i - 2] + x[i - 3],
                _ => 4 * x[i - 1] - 6 * x[i - 2] + 4 * x[i - 3] - x[i - 4],
            };
        }
    }

    private static void DecodeResidual(ref BitReader r, int order, Span<long> output)
    {
        var method = (int)r.Read(2);
        if (method > 1) throw Corrupt("reserved residual coding method");
        var paramBits = method == 0 ? 4 : 5;
        var escape = (1 << paramBits) - 1;
        var partitionOrder = (int)r.Read(4);
        var partitions = 1 << partitionOrder;
        if (output.Length % partitions != 0 || (output.Length >> partitionOrder) < order)
            throw Corrupt("residual partition order does not fit the block size");
        var i = order;
        for (var p = 0; p < partitions; p++)
        {
            var count = (output.Length >> partitionOrder) - (p == 0 ? order : 0);
            var k = (int)r.Read(paramBits);
            if (k == escape)
            {
                var raw = (int)r.Read(5);
                for (var n = 0; n < count; n++) output[i++] = raw == 0 ? 0 : r.ReadSigned(raw);
            }
            else
            {
                for (var n = 0; n < count; n++)
                {
                    var u = (r.ReadUnary() << k) | r.Read(k);
                    output[i++] = (long)(u >> 1) ^ -(long)(u & 1);
                }
            }
        }
    }

    private static MediaException Corrupt(string what) => new(MediaErrorKind.CorruptData, "FLAC frame is corrupt: " + what);

    private static readonly byte[] Crc8Table = BuildCrc8();
    private static readonly ushort[] Crc16Table = BuildCrc16();

    private static byte[] BuildCrc8()
    {
        var t = new byte[256];
        for (var i = 0; i < 256; i++)
        {
            var c = i;
            for (var b = 0; b < 8; b++) c = (c & 0x80) != 0 ? (c << 1) ^ 0x07 : c << 1;
            t[i] = (byte)c;
        }
        return t;
    }

    private static ushort[] BuildCrc16()
    {
        var t = new ushort[256];
        for (var i = 0; i < 256; i++)
        {
            var c = i << 8;
            for (var b = 0; b < 8; b++) c = (c & 0x8000) != 0 ? (c << 1) ^ 0x8005 : c << 1;
            t[i] = (ushort)c;
        }
        return t;
    }

    private static int Crc8(ReadOnlySpan<byte> data)
    {
        byte c = 0;
        foreach (var b in data) c = Crc8Table[c ^ b];
        return c;
    }

    private static int Crc16(ReadOnlySpan<byte> data)
    {
        ushort c = 0;
        foreach (var b in data) c = (ushort)((c << 8) ^ Crc16Table[(c >> 8) ^ b]);
        return c;
    }

    /// <summary>MSB-first bit reader; running off the end is a truncated file.</summary>
    private ref struct BitReader(ReadOnlySpan<byte> source, int bytePosition)
    {
        public readonly ReadOnlySpan<byte> Source = source;
        private long _bit = (long)bytePosition * 8;

        public readonly int BytePosition => (int)(_bit >> 3);

        public ulong Read(int count)
        {
            if (count == 0) return 0;
            if (_bit + count > (long)Source.Length * 8)
                throw new MediaException(MediaErrorKind.Truncated, "FLAC stream ends in the middle of a frame (truncated file)");
            ulong value = 0;
            var remaining = count;
            while (remaining > 0)
            {
                var b = Source[(int)(_bit >> 3)];
                var offset = (int)(_bit & 7);
                var take = Math.Min(8 - offset, remaining);
                var chunk = (b >> (8 - offset - take)) & ((1 << take) - 1);
                value = (value << take) | (uint)chunk;
                remaining -= take;
                _bit += take;
            }
            return value;
        }

        public long ReadSigned(int count)
        {
            var v = Read(count);
            var shift = 64 - count;
            return (long)(v << shift) >> shift;
        }

        public ulong ReadUnary()
        {
            ulong zeros = 0;
            while (true)
            {
                var index = (int)(_bit >> 3);
                if (index >= Source.Length)
                    throw new MediaException(MediaErrorKind.Truncated, "FLAC stream ends in the middle of a frame (truncated file)");
                var offset = (int)(_bit & 7);
                var rest = (byte)(Source[index] << offset);
                if (rest == 0)
                {
                    zeros += (ulong)(8 - offset);
                    _bit += 8 - offset;
                    if (zeros > 1UL << 32) throw Corrupt("runaway unary code");
                    continue;
                }
                var lead = System.Numerics.BitOperations.LeadingZeroCount((uint)rest) - 24;
                zeros += (ulong)lead;
                _bit += lead + 1;
                return zeros;
            }
        }

        public void AlignToByte() => _bit = (_bit + 7) & ~7L;
    }
}
