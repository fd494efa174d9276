using System.Numerics;

namespace FreeBind.Encoding.Preprocessing.Audio;

/// <summary>
/// ImageBind's <c>load_and_transform_audio_data</c>: resample to 16 kHz, three 2 s clips from
/// pytorchvideo's ConstantClipsPerVideoSampler, per clip mean removal and Kaldi fbank, pad/cut to
/// 204 frames, normalise with mean −4.268 and std 9.138 → [3, 1, 128, 204].
/// </summary>
public static class ImageBindAudio
{
    public const string InputName = "fbank";
    public const int Clips = 3;
    public const int TargetFrames = 204;
    private const int ClipSamples = 2 * KaldiFbank.SampleRate;
    private const float Mean = -4.268f, Std = 9.138f;

    public static readonly int[] ItemShape = [Clips, 1, KaldiFbank.MelBins, TargetFrames];

    /// <summary>
    /// Sample ranges [start, end) of the clips in a 16 kHz signal of <paramref name="samples"/>
    /// samples, exactly as ImageBind slices <c>waveform[:, int(start·sr):int(end·sr)]</c> with the
    /// clip times of pytorchvideo's <c>ConstantClipsPerVideoSampler</c> at the commit ImageBind pins
    /// (28fe037, and 6cdc929 since 2025; both contain fix 9368f30 of 2022-04-28): the first clip
    /// starts at 0 and the last ends at the end, start_k = ⌊k·(D−2)·16000/(n−1)⌋ (a 10 s file: 0, 4
    /// and 8 s). The registry release 0.1.5 divided by n instead and never heard the last (D−2)/3 s.
    /// The sampler works in exact fractions of the float duration, so D − 2 is taken as the float64
    /// it is in Python and the floor is exact; end = start + 32000, clipped to the signal.
    /// </summary>
    public static (int Start, int End)[] ClipRanges(long samples)
    {
        var spare = Math.Max((double)samples / KaldiFbank.SampleRate - 2, 0);
        // spare = mantissa · 2^exponent exactly, so the floor below is exact like Python's Fraction.
        var bits = BitConverter.DoubleToInt64Bits(spare);
        var exponent = (int)((bits >> 52) & 0x7FF);
        var mantissa = bits & 0xF_FFFF_FFFF_FFFFL;
        if (exponent == 0) exponent = 1; else mantissa |= 1L << 52;
        exponent -= 1075;
        var ranges = new (int, int)[Clips];
        for (var k = 0; k < Clips; k++)
        {
            var numerator = new BigInteger(mantissa) * k * KaldiFbank.SampleRate;
            var denominator = new BigInteger(Clips - 1);
            if (exponent >= 0) numerator <<= exponent; else denominator <<= -exponent;
            var start = (long)BigInteger.Divide(numerator, denominator);
            ranges[k] = ((int)start, (int)Math.Min(start + ClipSamples, samples));
        }
        return ranges;
    }

    /// <summary>
    /// The profile as a pure function (benchmarkable): decoded audio → [3·1·128·204] floats.
    /// Every channel is resampled, each clip's mean is taken over all channels and subtracted in
    /// place, and the fbank reads channel 0 only (Kaldi's channel = −1 means the first) — all as
    /// upstream does, including that overlapping clips (audio under 6 s) see earlier clips' mean
    /// removal because upstream subtracts in place on views of one tensor.
    /// </summary>
    public static float[] Compute(DecodedAudio audio)
    {
        var resampler = SincResampler.For(audio.SampleRate, KaldiFbank.SampleRate);
        var total = audio.SampleRate == KaldiFbank.SampleRate ? audio.Frames : resampler.OutputLength(audio.Frames);
        if (total < KaldiFbank.WindowSize)
            throw new MediaException(MediaErrorKind.EmptyAudio,
                $"audio lasts {audio.DurationSeconds * 1000:0.#} ms; ImageBind needs at least one 25 ms fbank frame");
        var ranges = ClipRanges(total);
        var channels = audio.Channels.Length;
        var output = new float[Clips * KaldiFbank.MelBins * TargetFrames];
        var clip = new float[channels][];
        var means = new float[Clips];
        for (var k = 0; k < Clips; k++)
        {
            var (start, end) = ranges[k];
            var length = end - start;
            double sum = 0;
            for (var c = 0; c < channels; c++)
            {
                var buffer = clip[c] ??= new float[ClipSamples];
                var span = buffer.AsSpan(0, length);
                if (audio.SampleRate == KaldiFbank.SampleRate) audio.Channels[c].AsSpan(start, length).CopyTo(span);
                else resampler.Resample(audio.Channels[c], span, start);
                // Replay earlier clips' in-place subtractions on the overlap, in order.
                for (var j = 0; j < k; j++)
                {
                    var lo = Math.Max(start, ranges[j].Start);
                    var hi = Math.Min(end, ranges[j].End);
                    if (hi > lo) System.Numerics.Tensors.TensorPrimitives.Subtract(span.Slice(lo - start, hi - lo), means[j], span.Slice(lo - start, hi - lo));
                }
                foreach (var v in span) sum += v;
            }
            means[k] = (float)(sum / ((double)length * channels));
            var first = clip[0].AsSpan(0, length);
            System.Numerics.Tensors.TensorPrimitives.Subtract(first, means[k], first);

            var dest = output.AsSpan(k * KaldiFbank.MelBins * TargetFrames, KaldiFbank.MelBins * TargetFrames);
            var frames = KaldiFbank.Shared.Compute(first, dest, TargetFrames, TargetFrames);
            // Missing frames are zero-padded before normalisation, as upstream pads the fbank.
            for (var b = 0; b < KaldiFbank.MelBins; b++)
                dest.Slice(b * TargetFrames + frames, TargetFrames - frames).Clear();
        }
        for (var i = 0; i < output.Length; i++) output[i] = (output[i] - Mean) / Std;
        return output;
    }
}

/// <summary>Profile <c>imagebind-audio</c>: input <c>fbank</c>, item [3, 1, 128, 204].</summary>
public sealed class ImageBindAudioPreprocessor(PreprocessingOptions options) : IPreprocessor
{
    private readonly AudioLimits _limits = AudioLimits.From(options);

    public string Profile => "imagebind-audio";

    public Modality Modality => Modality.Audio;

    public PreprocessedItem Process(MediaInput input)
    {
        var audio = AudioDecoder.Decode(input.Bytes, _limits, input.FileName);
        return new PreprocessedItem([ModelTensor.Float32(ImageBindAudio.InputName, ImageBindAudio.ItemShape, ImageBindAudio.Compute(audio))]);
    }
}
