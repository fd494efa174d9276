using System.Buffers.Binary;

namespace FreeBind.Encoding.Preprocessing.Audio;

/// <summary>RIFF/WAVE: PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE, any channel count.</summary>
internal static class WavDecoder
{
    private const ushort FormatPcm = 1, FormatFloat = 3, FormatExtensible = 0xFFFE;

    public static bool Sniff(ReadOnlySpan<byte> b) =>
        b.Length >= 12 && b[..4].SequenceEqual("RIFF"u8) && b.Slice(8, 4).SequenceEqual("WAVE"u8);

    public static DecodedAudio Decode(ReadOnlySpan<byte> bytes, AudioLimits limits)
    {
        var pos = 12;
        int format = -1, channels = 0, sampleRate = 0, blockAlign = 0, bits = 0;
        while (true)
        {
            if (pos + 8 > bytes.Length)
                throw new MediaException(MediaErrorKind.Truncated,
                    format < 0 ? "WAV ends before its 'fmt ' chunk" : "WAV ends before its 'data' chunk");
            var id = bytes.Slice(pos, 4);
            var size = BinaryPrimitives.ReadUInt32LittleEndian(bytes.Slice(pos + 4, 4));
            var body = pos + 8;
            if (id.SequenceEqual("fmt "u8))
            {
                if (size < 16)
                    throw new MediaException(MediaErrorKind.CorruptData, $"WAV 'fmt ' chunk of {size} bytes is too short");
                if (body + size > bytes.Length)
                    throw new MediaException(MediaErrorKind.Truncated, "WAV ends inside its 'fmt ' chunk");
                var f = bytes.Slice(body, (int)size);
                format = BinaryPrimitives.ReadUInt16LittleEndian(f);
                channels = BinaryPrimitives.ReadUInt16LittleEndian(f[2..]);
                sampleRate = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(f[4..]), int.MaxValue);
                blockAlign = BinaryPrimitives.ReadUInt16LittleEndian(f[12..]);
                bits = BinaryPrimitives.ReadUInt16LittleEndian(f[14..]);
                if (format == FormatExtensible)
                {
                    if (size < 40)
                        throw new MediaException(MediaErrorKind.CorruptData, "WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is shorter than 40 bytes");
                    // The sub-format GUID starts with the plain format tag.
                    format = BinaryPrimitives.ReadUInt16LittleEndian(f[24..]);
                }
            }
            else if (id.SequenceEqual("data"u8))
            {
                if (format < 0)
                    throw new MediaException(MediaErrorKind.CorruptData, "WAV 'data' chunk comes before the 'fmt ' chunk");
                var sampleBytes = CheckFormat(format, channels, sampleRate, blockAlign, bits, limits);
                long available = bytes.Length - body;
                long length = size;
                // Streaming writers leave 0 or 0xFFFFFFFF when the length was unknown: read to the end.
                if (size == uint.MaxValue || (size == 0 && available > 0)) length = available;
                else if (length > available)
                    throw new MediaException(MediaErrorKind.Truncated,
                        $"WAV 'data' chunk declares {length} bytes but only {available} follow (truncated file or lying header)");
                var frames = length / blockAlign;
                if (frames == 0)
                    throw new MediaException(MediaErrorKind.EmptyAudio, "WAV 'data' chunk holds no complete sample frame");
                limits.CheckFrames(frames, sampleRate, "WAV");
                return new DecodedAudio(sampleRate, Deinterleave(bytes.Slice(body, (int)(frames * blockAlign)), format, channels, sampleBytes, (int)frames));
            }
            var next = body + (long)size + (size & 1); // chunks are word aligned
            if (next > bytes.Length)
                throw new MediaException(MediaErrorKind.Truncated, $"WAV chunk '{Ascii(id)}' declares {size} bytes, past the end of the file");
            pos = (int)next;
        }
    }

    private static int CheckFormat(int format, int channels, int sampleRate, int blockAlign, int bits, AudioLimits limits)
    {
        var ok = format switch
        {
            FormatPcm => bits is 8 or 16 or 24 or 32,
            FormatFloat => bits is 32 or 64,
            _ => throw new MediaException(MediaErrorKind.UnsupportedFormat,
                $"WAV codec 0x{format:X4} is not supported (PCM and IEEE float only; compressed WAV such as ADPCM is not)"),
        };
        if (!ok)
            throw new MediaException(MediaErrorKind.UnsupportedFormat, $"WAV {(format == FormatPcm ? "PCM" : "float")} with {bits} bits per sample is not supported");
        limits.CheckFormat(sampleRate, channels, "WAV");
        var sampleBytes = bits / 8;
        if (blockAlign != channels * sampleBytes)
            throw new MediaException(MediaErrorKind.CorruptData,
                $"WAV header is inconsistent: block align {blockAlign} but {channels} channels × {sampleBytes} bytes");
        return sampleBytes;
    }

    private static float[][] Deinterleave(ReadOnlySpan<byte> data, int format, int channels, int sampleBytes, int frames)
    {
        var output = new float[channels][];
        for (var c = 0; c < channels; c++) output[c] = new float[frames];
        var stride = channels * sampleBytes;
        for (var c = 0; c < channels; c++)
        {
            var dst = output[c];
            var src = data[(c * sampleBytes)..];
            switch (format, sampleBytes)
            {
                case (FormatPcm, 1):
                    for (var i = 0; i < frames; i++) dst[i] = (src[i * stride] - 128) / 128f;
                    break;
                case (FormatPcm, 2):
                    for (var i = 0; i < frames; i++) dst[i] = BinaryPrimitives.ReadInt16LittleEndian(src[(i * stride)..]) / 32768f;
                    break;
                case (FormatPcm, 3):
                    for (var i = 0; i < frames; i++)
                    {
                        var o = i * stride;
                        dst[i] = ((src[o] << 8 | src[o + 1] << 16 | src[o + 2] << 24) >> 8) / 8388608f;
                    }
                    break;
                case (FormatPcm, 4):
                    for (var i = 0; i < frames; i++) dst[i] = (float)(BinaryPrimitives.ReadInt32LittleEndian(src[(i * stride)..]) / 2147483648.0);
                    break;
                case (FormatFloat, 4):
                    for (var i = 0; i < frames; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(i * stride)..]);
                    break;
                default:
                    for (var i = 0; i < frames; i++) dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src[(i * stride)..]);
                    break;
            }
            if (format == FormatFloat && HasNonFinite(dst))
                throw new MediaException(MediaErrorKind.CorruptData, "WAV float samples contain NaN or infinity");
        }
        return output;
    }

    private static bool HasNonFinite(float[] values)
    {
        foreach (var v in values)
            if (!float.IsFinite(v)) return true;
        return false;
    }

    private static string Ascii(ReadOnlySpan<byte> id)
    {
        Span<char> c = stackalloc char[4];
        for (var i = 0; i < 4; i++) c[i] = id[i] is >= 32 and < 127 ? (char)id[i] : '?';
        return new string(c);
    }
}
