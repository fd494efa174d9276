using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace FreeBind.Encoding.Preprocessing.Audio;

/// <summary>
/// laion_clap's audio path as FreeBind calls it (<c>get_audio_embedding_from_filelist</c> then
/// <c>get_audio_features</c> with data_filling 'repeatpad'): mono mix, 48 kHz, int16 round trip,
/// then 10 s (480,000 samples). Upstream's random choices for longer audio are replaced by fixed
/// ones (docs/preprocessing.md): the waveform crop is centred, and the fusion chunks are the
/// middle candidate of each third.
/// </summary>
public static class ClapAudio
{
    public const int MaxLength = 480000;
    public const int ChunkFrames = MaxLength / ClapMel.Hop + 1; // 1001
    public const string WaveformInput = "waveform";
    public const string FusionInput = "mel_fusion";

    public static readonly int[] WaveformShape = [1, MaxLength];
    public static readonly int[] FusionShape = [1, 4, ChunkFrames, ClapMel.MelBins];

    /// <summary>Mono 48 kHz samples [first, first + count) of the signal, after the int16 round trip.</summary>
    private static void Quantised48k(float[] mono, int sampleRate, long first, Span<float> dest)
    {
        SincResampler.For(sampleRate, ClapMel.SampleRate).Resample(mono, dest, first);
        Quantise(dest);
    }

    private static long Length48k(DecodedAudio audio) =>
        audio.SampleRate == ClapMel.SampleRate ? audio.Frames : SincResampler.For(audio.SampleRate, ClapMel.SampleRate).OutputLength(audio.Frames);

    /// <summary>laion_clap's <c>int16_to_float32(float32_to_int16(x))</c>: clip, ×32767, truncate, ÷32767.</summary>
    public static void Quantise(Span<float> x)
    {
        var i = 0;
        if (Avx.IsSupported)
        {
            // The same IEEE steps lane by lane (clamp, float multiply, truncate, double divide,
            // round to float), so the result is bit-identical to the scalar loop.
            var lo = Vector256.Create(-1f);
            var hi = Vector256.Create(1f);
            var scale = Vector256.Create(32767f);
            var divisor = Vector256.Create(32767.0);
            ref var x0 = ref MemoryMarshal.GetReference(x);
            for (; i <= x.Length - 8; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref x0, (nuint)i);
                var q = Avx.ConvertToVector256Int32WithTruncation(Avx.Min(Avx.Max(v, lo), hi) * scale);
                var a = Avx.ConvertToVector128Single(Avx.ConvertToVector256Double(q.GetLower()) / divisor);
                var b = Avx.ConvertToVector128Single(Avx.ConvertToVector256Double(q.GetUpper()) / divisor);
                Vector256.Create(a, b).StoreUnsafe(ref x0, (nuint)i);
            }
        }
        for (; i < x.Length; i++)
        {
            var q = (short)(Math.Clamp(x[i], -1f, 1f) * 32767f);
            x[i] = (float)(q / 32767.0);
        }
    }

    /// <summary>Repeats a short signal a whole number of times into 480,000 samples, zero tail ('repeatpad').</summary>
    private static float[] RepeatPad(ReadOnlySpan<float> audio)
    {
        var output = new float[MaxLength];
        var repeats = MaxLength / audio.Length;
        for (var r = 0; r < repeats; r++) audio.CopyTo(output.AsSpan(r * audio.Length));
        return output;
    }

    /// <summary>The <c>clap</c> (CLAP Music) profile as a pure function: [480,000] floats.</summary>
    public static float[] Waveform(DecodedAudio audio)
    {
        var mono = audio.MonoMix();
        var length = Length48k(audio);
        if (length > MaxLength)
        {
            var crop = new float[MaxLength];
            Quantised48k(mono, audio.SampleRate, (length - MaxLength) / 2, crop);
            return crop;
        }
        var full = new float[length];
        Quantised48k(mono, audio.SampleRate, 0, full);
        return full.Length == MaxLength ? full : RepeatPad(full);
    }

    /// <summary>The <c>clap-fusion</c> (CLAP General) profile as a pure function: [4·1001·64] floats.</summary>
    public static float[] Fusion(DecodedAudio audio)
    {
        var wave = new float[Length48k(audio)];
        Quantised48k(audio.MonoMix(), audio.SampleRate, 0, wave);
        return FusionFromQuantised(wave);
    }

    /// <summary>Fusion mel from the mono 48 kHz signal after the int16 round trip (a test seam too).</summary>
    public static float[] FusionFromQuantised(float[] wave)
    {
        var fusion = new float[4 * ChunkFrames * ClapMel.MelBins];
        var plane = ChunkFrames * ClapMel.MelBins;
        if (wave.Length <= MaxLength)
        {
            ClapMel.Shared.Compute(wave.Length == MaxLength ? wave : RepeatPad(wave), fusion.AsSpan(0, plane));
            for (var i = 1; i < 4; i++) fusion.AsSpan(0, plane).CopyTo(fusion.AsSpan(i * plane));
            return fusion;
        }
        // Longer: mel of the whole (uncropped) signal, then [global shrink, front, middle, back].
        var total = ClapMel.FrameCount(wave.Length);
        var mel = new float[total * ClapMel.MelBins];
        ClapMel.Shared.Compute(wave, mel);
        if (total == ChunkFrames)
        {
            for (var i = 0; i < 4; i++) mel.AsSpan().CopyTo(fusion.AsSpan(i * plane));
            return fusion;
        }
        ShrinkFrames(mel, total, fusion.AsSpan(0, plane));
        var starts = ChunkStarts(total);
        for (var i = 0; i < 3; i++)
            mel.AsSpan(starts[i] * ClapMel.MelBins, plane).CopyTo(fusion.AsSpan((i + 1) * plane));
        return fusion;
    }

    /// <summary>Waveform input from the whole quantised 48 kHz signal: centre crop or repeatpad.</summary>
    public static float[] WaveformFromQuantised(float[] wave) =>
        wave.Length > MaxLength ? wave.AsSpan((wave.Length - MaxLength) / 2, MaxLength).ToArray()
        : wave.Length == MaxLength ? wave : RepeatPad(wave);

    /// <summary>
    /// Upstream splits the candidate starts 0 … total − 1001 into three parts with
    /// <c>np.array_split</c> and picks one at random in each; we take each part's middle element
    /// (index len/2), and 0 for an empty part as upstream does.
    /// </summary>
    public static int[] ChunkStarts(int totalFrames)
    {
        var candidates = totalFrames - ChunkFrames + 1;
        var starts = new int[3];
        var offset = 0;
        for (var p = 0; p < 3; p++)
        {
            var size = candidates / 3 + (p < candidates % 3 ? 1 : 0);
            starts[p] = size == 0 ? 0 : offset + size / 2;
            offset += size;
        }
        return starts;
    }

    /// <summary>
    /// torchvision Resize([1001, 64]) of a [T, 64] tensor: bilinear, align_corners=False, no
    /// antialias (torchvision 0.14's tensor default); source indices in double, which matches torch
    /// in float64 exactly and its float32 kernel to ~2e-4 of the values.
    /// </summary>
    private static void ShrinkFrames(ReadOnlySpan<float> mel, int total, Span<float> dest)
    {
        var scale = (double)total / ChunkFrames;
        for (var t = 0; t < ChunkFrames; t++)
        {
            var src = Math.Max(scale * (t + 0.5) - 0.5, 0);
            var h0 = (int)src;
            var h1 = h0 < total - 1 ? h0 + 1 : h0;
            var l1 = (float)(src - h0);
            var l0 = 1f - l1;
            var a = mel.Slice(h0 * ClapMel.MelBins, ClapMel.MelBins);
            var b = mel.Slice(h1 * ClapMel.MelBins, ClapMel.MelBins);
            var row = dest.Slice(t * ClapMel.MelBins, ClapMel.MelBins);
            for (var m = 0; m < ClapMel.MelBins; m++) row[m] = l0 * a[m] + l1 * b[m];
        }
    }
}

/// <summary>Profile <c>clap</c> (CLAP Music): input <c>waveform</c>, item [1, 480000].</summary>
public sealed class ClapWaveformPreprocessor(PreprocessingOptions options) : IPreprocessor
{
    private readonly AudioLimits _limits = AudioLimits.From(options);

    public string Profile => "clap";

    public Modality Modality => Modality.Audio;

    public PreprocessedItem Process(MediaInput input)
    {
        var audio = AudioDecoder.Decode(input.Bytes, _limits, input.FileName);
        return new PreprocessedItem([ModelTensor.Float32(ClapAudio.WaveformInput, ClapAudio.WaveformShape, ClapAudio.Waveform(audio))]);
    }
}

/// <summary>Profile <c>clap-fusion</c> (CLAP General): input <c>mel_fusion</c>, item [1, 4, 1001, 64].</summary>
public sealed class ClapFusionPreprocessor(PreprocessingOptions options) : IPreprocessor
{
    private readonly AudioLimits _limits = AudioLimits.From(options);

    public string Profile => "clap-fusion";

    public Modality Modality => Modality.Audio;

    public PreprocessedItem Process(MediaInput input)
    {
        var audio = AudioDecoder.Decode(input.Bytes, _limits, input.FileName);
        return new PreprocessedItem([ModelTensor.Float32(ClapAudio.FusionInput, ClapAudio.FusionShape, ClapAudio.Fusion(audio))]);
    }
}
