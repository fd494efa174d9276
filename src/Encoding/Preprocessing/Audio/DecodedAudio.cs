namespace FreeBind.Encoding.Preprocessing.Audio;

/// <summary>
/// Decoded PCM, planar, scaled to [-1, 1] the way torchaudio.load normalises (integer PCM divided by
/// 2^(bits-1); 8-bit unsigned re-centred first).
/// </summary>
public sealed class DecodedAudio
{
    public DecodedAudio(int sampleRate, float[][] channels)
    {
        if (sampleRate <= 0) throw new ArgumentOutOfRangeException(nameof(sampleRate));
        if (channels.Length == 0) throw new ArgumentException("audio needs at least one channel", nameof(channels));
        var frames = channels[0].Length;
        foreach (var c in channels)
            if (c.Length != frames) throw new ArgumentException("all channels must have the same length", nameof(channels));
        SampleRate = sampleRate;
        Channels = channels;
    }

    public int SampleRate { get; }

    /// <summary>One array per channel, all of <see cref="Frames"/> samples.</summary>
    public float[][] Channels { get; }

    public int Frames => Channels[0].Length;

    public double DurationSeconds => (double)Frames / SampleRate;

    /// <summary>Mean of the channels (torch <c>mean(dim=0)</c>, librosa's <c>to_mono</c>).</summary>
    public float[] MonoMix()
    {
        if (Channels.Length == 1) return Channels[0];
        var mono = new float[Frames];
        foreach (var c in Channels)
            System.Numerics.Tensors.TensorPrimitives.Add(mono, c, mono);
        System.Numerics.Tensors.TensorPrimitives.Divide(mono, Channels.Length, mono);
        return mono;
    }
}

/// <summary>Limits checked while decoding untrusted audio (from <see cref="PreprocessingOptions"/>).</summary>
public readonly record struct AudioLimits(long MaxBytes, double MaxSeconds, int MaxChannels)
{
    public static AudioLimits From(PreprocessingOptions options) =>
        new(options.MaxAudioBytes, options.MaxAudioSeconds, options.MaxAudioChannels);

    internal void CheckFormat(int sampleRate, int channels, string codec)
    {
        if (channels <= 0)
            throw new MediaException(MediaErrorKind.CorruptData, $"{codec} header declares {channels} channels");
        if (channels > MaxChannels)
            throw new MediaException(MediaErrorKind.TooLarge, $"{codec} has {channels} channels; the limit is {MaxChannels}");
        if (sampleRate is <= 0 or > 1_536_000)
            throw new MediaException(MediaErrorKind.CorruptData, $"{codec} header declares an implausible sample rate of {sampleRate} Hz");
    }

    internal void CheckFrames(long frames, int sampleRate, string codec)
    {
        if ((double)frames / sampleRate > MaxSeconds)
            throw new MediaException(MediaErrorKind.TooLarge,
                $"{codec} audio lasts {(double)frames / sampleRate:0.#} s; the limit is {MaxSeconds:0.#} s (PreprocessingOptions.MaxAudioSeconds)");
    }
}
