using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace FreeBind.Encoding.Preprocessing.Audio;

/// <summary>
/// laion_clap's <c>get_mel</c>: torchaudio MelSpectrogram(48 kHz, n_fft = win = 1024, hop 480,
/// center with reflect padding, periodic Hann, power 2, HTK mel 64 bins 50–14,000 Hz, no norm) then
/// AmplitudeToDB (10·log10, floored at 1e-10, no top_db). Output is frame-major [T, 64] (mel.T).
/// </summary>
internal sealed class ClapMel
{
    public const int SampleRate = 48000;
    public const int FftSize = 1024;
    public const int Hop = 480;
    public const int MelBins = 64;
    private const double FMin = 50, FMax = 14000;

    public static ClapMel Shared { get; } = new();

    private readonly RealFft _fft = new(FftSize);
    private readonly double[] _window = new double[FftSize];
    private readonly MelFilters _mel;

    private ClapMel()
    {
        for (var i = 0; i < FftSize; i++) _window[i] = 0.5 - 0.5 * Math.Cos(2 * Math.PI * i / FftSize);
        // torchaudio.functional.melscale_fbanks with mel_scale="htk", norm=None.
        var freqs = FftSize / 2 + 1;
        var allFreqs = new double[freqs];
        for (var k = 0; k < freqs; k++) allFreqs[k] = (double)(SampleRate / 2) * k / (freqs - 1);
        var mMin = HzToMel(FMin);
        var mMax = HzToMel(FMax);
        var fPts = new double[MelBins + 2];
        for (var i = 0; i < fPts.Length; i++) fPts[i] = MelToHz(mMin + (mMax - mMin) * i / (MelBins + 1));
        var weights = new double[MelBins, freqs];
        for (var b = 0; b < MelBins; b++)
        {
            for (var k = 0; k < freqs; k++)
            {
                var down = (allFreqs[k] - fPts[b]) / (fPts[b + 1] - fPts[b]);
                var up = (fPts[b + 2] - allFreqs[k]) / (fPts[b + 2] - fPts[b + 1]);
                weights[b, k] = Math.Max(0, Math.Min(down, up));
            }
        }
        _mel = new MelFilters(weights);
    }

    private static double HzToMel(double hz) => 2595.0 * Math.Log10(1.0 + hz / 700.0);

    private static double MelToHz(double mel) => 700.0 * (Math.Pow(10.0, mel / 2595.0) - 1.0);

    /// <summary>frame[i] = src[i]·window[i] in double (widening is exact, so vectors change nothing).</summary>
    private static void Window(ReadOnlySpan<float> src, double[] window, Span<double> frame)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref var s = ref MemoryMarshal.GetReference(src);
            ref var w = ref MemoryMarshal.GetArrayDataReference(window);
            ref var f = ref MemoryMarshal.GetReference(frame);
            for (; i <= src.Length - 8; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref s, (nuint)i));
                (lo * Vector256.LoadUnsafe(ref w, (nuint)i)).StoreUnsafe(ref f, (nuint)i);
                (hi * Vector256.LoadUnsafe(ref w, (nuint)(i + 4))).StoreUnsafe(ref f, (nuint)(i + 4));
            }
        }
        for (; i < src.Length; i++) frame[i] = src[i] * window[i];
    }

    /// <summary>Frames for a signal of this length with center=True.</summary>
    public static int FrameCount(int samples) => 1 + samples / Hop;

    /// <summary>Writes [FrameCount, 64] dB values into <paramref name="dest"/>.</summary>
    public void Compute(ReadOnlySpan<float> wave, Span<float> dest)
    {
        var length = wave.Length;
        if (length <= FftSize / 2)
            throw new ArgumentException($"reflect padding needs more than {FftSize / 2} samples", nameof(wave));
        var frames = FrameCount(length);
        Span<double> frame = stackalloc double[FftSize];
        Span<double> power = stackalloc double[FftSize / 2 + 1];
        Span<double> scratch = stackalloc double[_fft.ScratchLength];
        Span<double> energies = stackalloc double[MelBins];
        const int pad = FftSize / 2;
        for (var t = 0; t < frames; t++)
        {
            var begin = t * Hop - pad;
            if (begin >= 0 && begin + FftSize <= length)
            {
                Window(wave.Slice(begin, FftSize), _window, frame);
            }
            else
            {
                for (var i = 0; i < FftSize; i++)
                {
                    var j = begin + i;
                    if (j < 0) j = -j; // reflect without repeating the edge sample
                    else if (j >= length) j = 2 * (length - 1) - j;
                    frame[i] = wave[j] * _window[i];
                }
            }
            _fft.Power(frame, power, scratch);
            _mel.Apply(power, energies);
            var row = dest.Slice(t * MelBins, MelBins);
            for (var b = 0; b < MelBins; b++)
                row[b] = (float)(10.0 * Math.Log10(Math.Max((float)energies[b], 1e-10f)));
        }
    }
}
