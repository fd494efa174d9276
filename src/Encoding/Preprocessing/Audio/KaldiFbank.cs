namespace FreeBind.Encoding.Preprocessing.Audio;

/// <summary>
/// torchaudio.compliance.kaldi.fbank as ImageBind calls it: 16 kHz, 25 ms frames (400 samples),
/// 10 ms shift, snip_edges, DC removal, pre-emphasis 0.97, symmetric Hann ("hanning"), 512-point
/// FFT, power spectrum, 128 triangular mel bins on Kaldi's mel scale (1127·ln(1 + f/700)) from 20 Hz
/// to Nyquist, natural log floored at float32 epsilon, no energy, no dither.
/// </summary>
internal sealed class KaldiFbank
{
    public const int SampleRate = 16000;
    public const int WindowSize = 400;
    public const int WindowShift = 160;
    public const int PaddedSize = 512;
    public const int MelBins = 128;
    private const double Preemphasis = 0.97;
    private const double LowFreq = 20;
    private const float LogFloor = 1.1920929e-07f; // torch.finfo(float32).eps

    public static KaldiFbank Shared { get; } = new();

    private readonly RealFft _fft = new(PaddedSize);
    private readonly double[] _window = new double[WindowSize];
    private readonly MelFilters _mel;

    private KaldiFbank()
    {
        for (var i = 0; i < WindowSize; i++) _window[i] = 0.5 - 0.5 * Math.Cos(2 * Math.PI * i / (WindowSize - 1));
        // Kaldi builds the bank over the first N/2 FFT bins; the Nyquist bin gets weight 0.
        var bins = PaddedSize / 2;
        var binWidth = (double)SampleRate / PaddedSize;
        var melLow = KaldiMel(LowFreq);
        var melHigh = KaldiMel(SampleRate / 2.0);
        var delta = (melHigh - melLow) / (MelBins + 1);
        var weights = new double[MelBins, bins];
        for (var b = 0; b < MelBins; b++)
        {
            var left = melLow + b * delta;
            var center = melLow + (b + 1) * delta;
            var right = melLow + (b + 2) * delta;
            for (var k = 0; k < bins; k++)
            {
                var mel = KaldiMel(binWidth * k);
                var up = (mel - left) / (center - left);
                var down = (right - mel) / (right - center);
                weights[b, k] = Math.Max(0, Math.Min(up, down));
            }
        }
        _mel = new MelFilters(weights);
    }

    private static double KaldiMel(double hz) => 1127.0 * Math.Log(1.0 + hz / 700.0);

    /// <summary>Frames Kaldi produces for a signal with snip_edges (0 when shorter than a window).</summary>
    public static int FrameCount(int samples) => samples < WindowSize ? 0 : 1 + (samples - WindowSize) / WindowShift;

    /// <summary>
    /// Writes log-mel energies transposed, <c>dest[bin · stride + frame]</c>, for frames
    /// [0, min(FrameCount, maxFrames)); returns how many were written.
    /// </summary>
    public int Compute(ReadOnlySpan<float> wave, Span<float> dest, int stride, int maxFrames)
    {
        var frames = Math.Min(FrameCount(wave.Length), maxFrames);
        Span<double> frame = stackalloc double[PaddedSize];
        Span<double> power = stackalloc double[PaddedSize / 2 + 1];
        Span<double> scratch = stackalloc double[_fft.ScratchLength];
        Span<double> energies = stackalloc double[MelBins];
        for (var t = 0; t < frames; t++)
        {
            var src = wave.Slice(t * WindowShift, WindowSize);
            double mean = 0;
            for (var i = 0; i < WindowSize; i++) mean += src[i];
            mean /= WindowSize;
            // Pre-emphasis after DC removal; the first sample uses itself as predecessor (replicate pad).
            var previous = src[0] - mean;
            for (var i = 0; i < WindowSize; i++)
            {
                var x = src[i] - mean;
                frame[i] = (x - Preemphasis * previous) * _window[i];
                previous = x;
            }
            frame[WindowSize..].Clear();
            _fft.Power(frame, power, scratch);
            _mel.Apply(power, energies);
            for (var b = 0; b < MelBins; b++)
                dest[b * stride + t] = MathF.Log(Math.Max((float)energies[b], LogFloor));
        }
        return frames;
    }
}

/// <summary>Triangular filters stored sparsely (first nonzero bin + weights) so a frame costs one pass.</summary>
internal sealed class MelFilters
{
    private readonly int[] _start;
    private readonly double[][] _weights;

    public MelFilters(double[,] dense)
    {
        var bins = dense.GetLength(0);
        _start = new int[bins];
        _weights = new double[bins][];
        for (var b = 0; b < bins; b++)
        {
            int first = -1, last = -1;
            for (var k = 0; k < dense.GetLength(1); k++)
                if (dense[b, k] != 0) { if (first < 0) first = k; last = k; }
            _start[b] = Math.Max(first, 0);
            _weights[b] = first < 0 ? [] : new double[last - first + 1];
            for (var k = 0; k < _weights[b].Length; k++) _weights[b][k] = dense[b, first + k];
        }
    }

    public void Apply(ReadOnlySpan<double> power, Span<double> energies)
    {
        for (var b = 0; b < _weights.Length; b++)
        {
            var w = _weights[b];
            var p = power.Slice(_start[b], w.Length);
            double sum = 0;
            for (var k = 0; k < w.Length; k++) sum += w[k] * p[k];
            energies[b] = sum;
        }
    }
}
