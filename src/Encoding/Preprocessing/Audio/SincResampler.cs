using System.Collections.Concurrent;
using System.Numerics.Tensors;

namespace FreeBind.Encoding.Preprocessing.Audio;

/// <summary>
/// torchaudio 0.13's default <c>functional.resample</c> (sinc_interpolation with a Hann window,
/// lowpass_filter_width 6, rolloff 0.99, rates reduced by their gcd), as a polyphase FIR: output
/// n = j·new + i is the dot product of the input at j·orig − width … with phase i's kernel. Taps
/// where torch clamps the sinc argument to ±width carry weights below 1e-15 and are skipped.
/// Kernels are built once per rate pair and shared (immutable, thread-safe).
/// </summary>
public sealed class SincResampler
{
    private const int LowpassFilterWidth = 6;
    private const double Rolloff = 0.99;

    private static readonly ConcurrentDictionary<(int, int), SincResampler> Cache = new();

    private readonly int _orig; // reduced rates
    private readonly int _new;
    private readonly int _width;
    private readonly float[][] _kernels; // per phase, trimmed
    private readonly int[] _offsets; // first kept tap per phase (index into torch's kernel)

    private SincResampler(int origFreq, int newFreq)
    {
        var gcd = Gcd(origFreq, newFreq);
        _orig = origFreq / gcd;
        _new = newFreq / gcd;
        var baseFreq = Math.Min(_orig, _new) * Rolloff;
        _width = (int)Math.Ceiling(LowpassFilterWidth * _orig / baseFreq);
        var taps = 2 * _width + _orig;
        _kernels = new float[_new][];
        _offsets = new int[_new];
        // torch builds the kernel in the waveform's dtype (float32); the same float32 steps here
        // keep our kernel within an ulp of it, so int16 quantisation downstream rarely flips.
        var scale = (float)(baseFreq / _orig);
        var baseF = (float)baseFreq;
        var full = new float[taps];
        for (var i = 0; i < _new; i++)
        {
            int first = -1, last = -1;
            var phase = (float)(-(double)i / _new);
            for (var k = 0; k < taps; k++)
            {
                var t = (phase + (float)(k - _width) / _orig) * baseF;
                if (Math.Abs(t) >= LowpassFilterWidth) { full[k] = 0; continue; }
                var window = MathF.Cos(t * MathF.PI / LowpassFilterWidth / 2);
                window *= window;
                var x = t * MathF.PI;
                full[k] = (x == 0 ? 1f : MathF.Sin(x) / x) * (window * scale);
                if (first < 0) first = k;
                last = k;
            }
            _offsets[i] = first;
            _kernels[i] = new float[last - first + 1];
            Array.Copy(full, first, _kernels[i], 0, last - first + 1);
        }
    }

    public int OriginalRate => _orig;

    /// <summary>Shared resampler for a rate pair.</summary>
    public static SincResampler For(int origFreq, int newFreq)
    {
        if (origFreq <= 0 || newFreq <= 0) throw new ArgumentOutOfRangeException(nameof(origFreq), "sample rates must be positive");
        return Cache.GetOrAdd((origFreq, newFreq), static k => new SincResampler(k.Item1, k.Item2));
    }

    /// <summary>torchaudio's output length: ceil(new · length / orig).</summary>
    public long OutputLength(long inputLength) => (_new * inputLength + _orig - 1) / _orig;

    /// <summary>Resamples a whole signal (identity when the rates are equal, as torchaudio).</summary>
    public float[] Resample(ReadOnlySpan<float> input)
    {
        var output = new float[OutputLength(input.Length)];
        Resample(input, output, 0);
        return output;
    }

    /// <summary>
    /// Writes output samples [first, first + output.Length) of the resampled signal. The filter is
    /// local, so a window of the output is computed exactly without resampling the rest.
    /// </summary>
    public void Resample(ReadOnlySpan<float> input, Span<float> output, long first)
    {
        if (_orig == _new && _orig == 1)
        {
            input.Slice((int)first, output.Length).CopyTo(output);
            return;
        }
        var length = input.Length;
        for (var o = 0; o < output.Length; o++)
        {
            var n = first + o;
            var j = n / _new;
            var i = (int)(n % _new);
            var kernel = _kernels[i];
            // Input index of the kernel's first kept tap; torch pads with zeros outside [0, length).
            var start = j * _orig - _width + _offsets[i];
            if (start >= 0 && start + kernel.Length <= length)
            {
                output[o] = TensorPrimitives.Dot(input.Slice((int)start, kernel.Length), kernel);
            }
            else
            {
                var lo = (int)Math.Max(0, -start);
                var hi = (int)Math.Min(kernel.Length, length - start);
                output[o] = hi > lo ? TensorPrimitives.Dot(input.Slice((int)(start + lo), hi - lo), kernel.AsSpan(lo, hi - lo)) : 0f;
            }
        }
    }

    private static int Gcd(int a, int b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }
}
