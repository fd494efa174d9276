using System.Buffers.Binary;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Preprocessing.Audio;
using Xunit.Abstractions;

namespace FreeBind.Tests.Preprocessing;

/// <summary>Codecs against independent encoders (libsndfile, LAME) and the hostile corpus.</summary>
public sealed class AudioDecodingTests(ITestOutputHelper output)
{
    private static readonly AudioLimits Limits = AudioLimits.From(new PreprocessingOptions());

    private static string Codec(string file) => TestPaths.Data("preprocess", "audio", "codecs", file);

    private static DecodedAudio Decode(byte[] bytes, string name = "test.wav") => AudioDecoder.Decode(bytes, Limits, name);

    private static float[][] Source(string file)
    {
        var npy = Npy.Read(Codec(file));
        var (shape, data) = (npy.Shape, npy.Floats!);
        return Enumerable.Range(0, shape[0]).Select(c => data.AsSpan(c * shape[1], shape[1]).ToArray()).ToArray();
    }

    [Theory]
    [InlineData("tone.flac", "source_44k1_stereo.npy", 44100)]
    [InlineData("mono24.flac", "source_48k_mono24.npy", 48000)]
    public void FlacIsLossless(string file, string source, int rate)
    {
        var audio = Decode(File.ReadAllBytes(Codec(file)), file);
        var expected = Source(source);
        Assert.Equal(rate, audio.SampleRate);
        Assert.Equal(expected.Length, audio.Channels.Length);
        for (var c = 0; c < expected.Length; c++) Assert.Equal(expected[c], audio.Channels[c]);
    }

    /// <summary>Relative RMS error after the best alignment within <paramref name="maxLag"/> samples.</summary>
    private static (double Error, int Lag) Compare(float[] reference, float[] decoded, int maxLag)
    {
        var best = (Error: double.MaxValue, Lag: 0);
        for (var lag = 0; lag <= maxLag; lag++)
        {
            double err = 0, energy = 0;
            var n = Math.Min(reference.Length, decoded.Length - lag);
            for (var i = 0; i < n; i += 3)
            {
                var d = decoded[i + lag] - reference[i];
                err += d * d;
                energy += reference[i] * reference[i];
            }
            var rel = Math.Sqrt(err / energy);
            if (rel < best.Error) best = (rel, lag);
        }
        return best;
    }

    [Theory]
    [InlineData("tone.ogg", 0, 0.2)] // Vorbis drops much of the test signal's white noise
    [InlineData("tone.mp3", 2400, 0.15)] // MP3 carries encoder delay that NLayer does not trim
    public void LossyCodecsDecodeCloseToTheirSource(string file, int maxLag, double tolerance)
    {
        var audio = Decode(File.ReadAllBytes(Codec(file)), file);
        var expected = Source("source_44k1_stereo.npy");
        Assert.Equal(44100, audio.SampleRate);
        Assert.Equal(2, audio.Channels.Length);
        Assert.InRange(audio.Frames, expected[0].Length, expected[0].Length + 4 * 1152);
        for (var c = 0; c < 2; c++)
        {
            var (error, lag) = Compare(expected[c], audio.Channels[c], maxLag);
            output.WriteLine($"{file} channel {c}: relative RMS error {error:P2} at lag {lag}");
            Assert.True(error < tolerance, $"{file} channel {c}: relative RMS error {error:P2}");
        }
    }

    // ----- hostile corpus: each input gives its typed error, never another exception

    private static MediaErrorKind Kind(byte[] bytes, string name = "hostile.wav", AudioLimits? limits = null) =>
        Assert.Throws<MediaException>(() => AudioDecoder.Decode(bytes, limits ?? Limits, name)).Kind;

    private static byte[] Wav(int format, int channels, int rate, int bits, int blockAlign, int dataBytes, int declaredData = -1)
    {
        var bytes = new byte[44 + dataBytes];
        "RIFF"u8.CopyTo(bytes);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), 36 + dataBytes);
        "WAVEfmt "u8.CopyTo(bytes.AsSpan(8));
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(16), 16);
        BinaryPrimitives.WriteInt16LittleEndian(bytes.AsSpan(20), (short)format);
        BinaryPrimitives.WriteInt16LittleEndian(bytes.AsSpan(22), (short)channels);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(24), rate);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(28), rate * blockAlign);
        BinaryPrimitives.WriteInt16LittleEndian(bytes.AsSpan(32), (short)blockAlign);
        BinaryPrimitives.WriteInt16LittleEndian(bytes.AsSpan(34), (short)bits);
        "data"u8.CopyTo(bytes.AsSpan(36));
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(40), declaredData >= 0 ? declaredData : dataBytes);
        return bytes;
    }

    [Fact]
    public void EmptyFileIsEmptyAudio() => Assert.Equal(MediaErrorKind.EmptyAudio, Kind([]));

    [Fact]
    public void RandomBytesNamedWavAreUnsupported()
    {
        var bytes = new byte[64 * 1024];
        new Random(1234).NextBytes(bytes);
        bytes[0] = 0x17; // keep the fixed seed's bytes clear of every signature
        Assert.Equal(MediaErrorKind.UnsupportedFormat, Kind(bytes, "noise.wav"));
    }

    [Fact]
    public void TruncatedWavIsTruncated()
    {
        var bytes = File.ReadAllBytes(TestPaths.Sample("BBQ.wav"));
        Assert.Equal(MediaErrorKind.Truncated, Kind(bytes[..(bytes.Length / 2)]));
        Assert.Equal(MediaErrorKind.Truncated, Kind(bytes[..30])); // inside the fmt chunk
    }

    [Fact]
    public void LyingDataSizeIsTruncated() =>
        Assert.Equal(MediaErrorKind.Truncated, Kind(Wav(1, 1, 16000, 16, 2, 3200, declaredData: 0x7FFF0000)));

    [Fact]
    public void InconsistentBlockAlignIsCorrupt() =>
        Assert.Equal(MediaErrorKind.CorruptData, Kind(Wav(1, 1, 16000, 16, 3, 3200)));

    [Fact]
    public void ImplausibleHeaderFieldsAreCorrupt()
    {
        Assert.Equal(MediaErrorKind.CorruptData, Kind(Wav(1, 0, 16000, 16, 0, 3200)));
        Assert.Equal(MediaErrorKind.CorruptData, Kind(Wav(1, 1, 0, 16, 2, 3200)));
    }

    [Fact]
    public void CompressedWavCodecIsUnsupported()
    {
        Assert.Equal(MediaErrorKind.UnsupportedFormat, Kind(Wav(2, 1, 16000, 4, 256, 3200))); // MS ADPCM
        Assert.Equal(MediaErrorKind.UnsupportedFormat, Kind(Wav(1, 1, 16000, 12, 2, 3200)));
    }

    [Fact]
    public void ZeroLengthDataIsEmptyAudio() =>
        Assert.Equal(MediaErrorKind.EmptyAudio, Kind(Wav(1, 2, 16000, 16, 4, 0)));

    [Fact]
    public void NonFiniteFloatSamplesAreCorrupt()
    {
        var bytes = Wav(3, 1, 16000, 32, 4, 4000);
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(44 + 400), float.NaN);
        Assert.Equal(MediaErrorKind.CorruptData, Kind(bytes));
    }

    [Fact]
    public void LimitsAreEnforcedBeforeDecoding()
    {
        var tight = new AudioLimits(1 << 20, 1.0, 2);
        Assert.Equal(MediaErrorKind.TooLarge, Kind(Wav(1, 1, 16000, 16, 2, 64000), limits: tight)); // 2 s > 1 s
        Assert.Equal(MediaErrorKind.TooLarge, Kind(Wav(1, 4, 16000, 16, 8, 800), limits: tight)); // 4 channels
        Assert.Equal(MediaErrorKind.TooLarge, Kind(new byte[(1 << 20) + 1], limits: tight));
        Assert.Equal(MediaErrorKind.TooLarge, Kind(File.ReadAllBytes(Codec("tone.flac")), "tone.flac", new AudioLimits(1 << 30, 1.0, 2)));
    }

    [Fact]
    public void AudioShorterThanOneFbankFrameIsRefusedByImageBind()
    {
        var audio = Decode(Wav(1, 1, 16000, 16, 2, 2 * 300));
        Assert.Equal(MediaErrorKind.EmptyAudio, Assert.Throws<MediaException>(() => ImageBindAudio.Compute(audio)).Kind);
    }

    [Fact]
    public void CorruptFlacFailsItsCrc()
    {
        var bytes = File.ReadAllBytes(Codec("tone.flac"));
        bytes[bytes.Length / 2] ^= 0x5A;
        Assert.Equal(MediaErrorKind.CorruptData, Kind(bytes, "tone.flac"));
    }

    [Fact]
    public void TruncatedFlacIsTruncated()
    {
        var bytes = File.ReadAllBytes(Codec("tone.flac"));
        Assert.Equal(MediaErrorKind.Truncated, Kind(bytes[..(bytes.Length / 2)], "tone.flac"));
        Assert.Equal(MediaErrorKind.Truncated, Kind(bytes[..20], "tone.flac"));
    }

    [Fact]
    public void OggOpusIsUnsupported()
    {
        var bytes = new byte[200];
        "OggS"u8.CopyTo(bytes);
        "OpusHead"u8.CopyTo(bytes.AsSpan(28));
        Assert.Equal(MediaErrorKind.UnsupportedFormat, Kind(bytes, "voice.ogg"));
    }

    [Fact]
    public void CorruptCompressedStreamsGiveTypedErrors()
    {
        var ogg = File.ReadAllBytes(Codec("tone.ogg"));
        Assert.Equal(MediaErrorKind.Truncated, Kind(ogg[..(ogg.Length / 3)], "tone.ogg"));
        Assert.Equal(MediaErrorKind.Truncated, Kind(ogg[..(ogg.Length / 3)].Concat(new byte[5000]).ToArray(), "tone.ogg"));
        var mp3 = File.ReadAllBytes(Codec("tone.mp3"));
        var garbage = new byte[mp3.Length];
        new Random(7).NextBytes(garbage);
        mp3.AsSpan(0, 8).CopyTo(garbage); // keep a frame header, then noise
        output.WriteLine($"noise mp3 decodes: {TryKind(garbage, "noise.mp3")}");
    }

    private static string TryKind(byte[] bytes, string name)
    {
        try
        {
            var audio = AudioDecoder.Decode(bytes, Limits, name);
            return $"{audio.Frames} frames";
        }
        catch (MediaException ex)
        {
            return ex.Kind.ToString();
        }
    }
}
