namespace FreeBind.Encoding.Preprocessing.Audio;

/// <summary>MP3 through NLayer and Ogg Vorbis through NVorbis (managed, maintained, served by NuGet).</summary>
internal static class CompressedDecoders
{
    public static bool SniffOgg(ReadOnlySpan<byte> b) => b.Length >= 4 && b[..4].SequenceEqual("OggS"u8);

    /// <summary>An ID3v2 tag, or two consecutive MPEG audio frame headers (one alone is too weak a sign).</summary>
    public static bool SniffMp3(ReadOnlySpan<byte> b)
    {
        if (b.Length >= 10 && b[..3].SequenceEqual("ID3"u8)) return true;
        var first = Mp3FrameLength(b);
        return first > 0 && first + 4 <= b.Length && Mp3FrameLength(b[first..]) > 0;
    }

    private static readonly int[] V1L3Kbps = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
    private static readonly int[] V2L3Kbps = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

    private static int Mp3FrameLength(ReadOnlySpan<byte> h)
    {
        if (h.Length < 4 || h[0] != 0xFF || (h[1] & 0xE0) != 0xE0) return 0;
        var version = (h[1] >> 3) & 3; // 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
        var layer = (h[1] >> 1) & 3; // 1 = layer III
        var bitrate = h[2] >> 4;
        var rateIndex = (h[2] >> 2) & 3;
        if (version == 1 || layer != 1 || bitrate is 0 or 15 || rateIndex == 3) return 0;
        int[] rates = version == 3 ? [44100, 48000, 32000] : version == 2 ? [22050, 24000, 16000] : [11025, 12000, 8000];
        var kbps = (version == 3 ? V1L3Kbps : V2L3Kbps)[bitrate];
        var padding = (h[2] >> 1) & 1;
        return (version == 3 ? 144 : 72) * kbps * 1000 / rates[rateIndex] + padding;
    }

    public static DecodedAudio DecodeMp3(ReadOnlyMemory<byte> bytes, AudioLimits limits)
    {
        try
        {
            using var stream = new MemoryStream(bytes.ToArray(), writable: false);
            using var mpeg = new NLayer.MpegFile(stream);
            return ReadInterleaved(mpeg.SampleRate, mpeg.Channels, "MP3", limits, (buffer, count) => mpeg.ReadSamples(buffer, 0, count));
        }
        catch (MediaException) { throw; }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new MediaException(MediaErrorKind.CorruptData, "MP3 could not be decoded: " + ex.Message, ex);
        }
    }

    public static DecodedAudio DecodeVorbis(ReadOnlyMemory<byte> bytes, AudioLimits limits)
    {
        // Ogg also carries Opus, FLAC and Speex; name the codec instead of failing obscurely.
        var head = bytes.Span[..Math.Min(bytes.Length, 64)];
        if (head.IndexOf("\u0001vorbis"u8) < 0)
        {
            var codec = head.IndexOf("OpusHead"u8) >= 0 ? "Opus" : head.IndexOf("FLAC"u8) >= 0 ? "FLAC" : head.IndexOf("Speex"u8) >= 0 ? "Speex" : "an unknown codec";
            throw new MediaException(MediaErrorKind.UnsupportedFormat, $"Ogg stream carries {codec}; only Ogg Vorbis is supported");
        }
        // NVorbis stops quietly at a cut; a complete stream's last page carries the end-of-stream flag.
        var lastPage = bytes.Span.LastIndexOf("OggS"u8);
        if (lastPage < 0 || lastPage + 27 > bytes.Length || (bytes.Span[lastPage + 5] & 0x04) == 0)
            throw new MediaException(MediaErrorKind.Truncated, "Ogg stream has no end-of-stream page (truncated file)");
        try
        {
            using var stream = new MemoryStream(bytes.ToArray(), writable: false);
            using var vorbis = new NVorbis.VorbisReader(stream, closeOnDispose: false);
            return ReadInterleaved(vorbis.SampleRate, vorbis.Channels, "Ogg Vorbis", limits, (buffer, count) => vorbis.ReadSamples(buffer, 0, count));
        }
        catch (MediaException) { throw; }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new MediaException(MediaErrorKind.CorruptData, "Ogg Vorbis could not be decoded: " + ex.Message, ex);
        }
    }

    private static DecodedAudio ReadInterleaved(int sampleRate, int channels, string codec, AudioLimits limits, Func<float[], int, int> read)
    {
        limits.CheckFormat(sampleRate, channels, codec);
        var maxFrames = (long)(limits.MaxSeconds * sampleRate);
        var buffer = new float[4096 * channels];
        var planar = new float[channels][];
        for (var c = 0; c < channels; c++) planar[c] = new float[sampleRate];
        var frames = 0;
        int got;
        while ((got = read(buffer, buffer.Length)) > 0)
        {
            var n = got / channels;
            if (frames + (long)n > maxFrames) limits.CheckFrames(frames + (long)n, sampleRate, codec);
            if (frames + n > planar[0].Length)
                for (var c = 0; c < channels; c++) Array.Resize(ref planar[c], Math.Max(planar[c].Length * 2, frames + n));
            for (var c = 0; c < channels; c++)
            {
                var dst = planar[c];
                for (var i = 0; i < n; i++) dst[frames + i] = buffer[i * channels + c];
            }
            frames += n;
        }
        if (frames == 0) throw new MediaException(MediaErrorKind.EmptyAudio, $"{codec} stream decodes to no samples");
        for (var c = 0; c < channels; c++) Array.Resize(ref planar[c], frames);
        return new DecodedAudio(sampleRate, planar);
    }
}
