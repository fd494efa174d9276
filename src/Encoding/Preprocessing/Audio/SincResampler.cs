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
        // Interior outputs (every tap inside the signal) go through the blocked polyphase path;
        // the few outputs near the edges, where torch pads with zeros, through the direct one.
        var (jLo, jHi) = InteriorRange(input.Length, first, output.Length);
        if (jHi - jLo >= Block)
        {
            Direct(input, output, first, first, jLo * _new);
            Polyphase(input, output, first, jLo, jHi);
            Direct(input, output, first, jHi * _new, first + output.Length);
        }
        else
        {
            Direct(input, output, first, first, first + output.Length);
        }
    }

    private const int Block = 1024;

    // Output frames j (n = j·new + i) whose outputs lie in the window for every phase and whose taps all lie inside the input.
    private (long Lo, long Hi) InteriorRange(int length, long first, int count)
    {
        long lo = (first + _new - 1) / _new, hi = (first + count) / _new;
        for (var i = 0; i < _new; i++)
        {
            long baseIndex = -_width + _offsets[i];
            lo = Math.Max(lo, CeilDiv(-baseIndex, _orig));
            hi = Math.Min(hi, FloorDiv(length - baseIndex - _kernels[i].Length, _orig) + 1);
        }
        return (lo, Math.Max(lo, hi));
    }

    private void Direct(ReadOnlySpan<float> input, Span<float> output, long first, long from, long to)
    {
        var length = input.Length;
        for (var n = Math.Max(from, first); n < to; n++)
        {
            var j = n / _new;
            var i = (int)(n % _new);
            var kernel = _kernels[i];
            // Input index of the kernel's first kept tap; torch pads with zeros outside [0, length).
            var start = j * _orig - _width + _offsets[i];
            var lo = (int)Math.Max(0, -start);
            var hi = (int)Math.Min(kernel.Length, length - start);
            output[(int)(n - first)] = hi > lo ? TensorPrimitives.Dot(input.Slice((int)(start + lo), hi - lo), kernel.AsSpan(lo, hi - lo)) : 0f;
        }
    }

    /// <summary>
    /// Frames [jLo, jHi) in blocks: the input is split into <c>orig</c> strided streams so that each
    /// tap of each phase is one vectorised multiply-add over a contiguous block (kept in L1).
    /// </summary>
    private void Polyphase(ReadOnlySpan<float> input, Span<float> output, long first, long jLo, long jHi)
    {
        // Tap (i, k) reads input[j·orig + b], b = −width + offset_i + k = q·orig + r: stream r at frame j + q.
        int minQ = int.MaxValue, maxQ = int.MinValue;
        for (var i = 0; i < _new; i++)
        {
            minQ = Math.Min(minQ, (int)FloorDiv(-_width + _offsets[i], _orig));
            maxQ = Math.Max(maxQ, (int)FloorDiv(-_width + _offsets[i] + _kernels[i].Length - 1, _orig));
        }
        var span = Block + maxQ - minQ + 1;
        var streams = System.Buffers.ArrayPool<float>.Shared.Rent(_orig * span);
        var y = System.Buffers.ArrayPool<float>.Shared.Rent(Block);
        try
        {
            for (var j0 = jLo; j0 < jHi; j0 += Block)
            {
                var count = (int)Math.Min(Block, jHi - j0);
                var frames = count + maxQ - minQ;
                for (var r = 0; r < _orig; r++)
                {
                    var stream = streams.AsSpan(r * span, frames);
                    var at = (j0 + minQ) * _orig + r;
                    for (var m = 0; m < frames; m++, at += _orig) stream[m] = input[(int)at];
                }
                for (var i = 0; i < _new; i++)
                {
                    var kernel = _kernels[i];
                    var acc = y.AsSpan(0, count);
                    acc.Clear();
                    for (var k = 0; k < kernel.Length; k++)
                    {
                        var b = -_width + _offsets[i] + k;
                        var q = (int)FloorDiv(b, _orig);
                        var r = b - q * _orig;
                        TensorPrimitives.MultiplyAdd(streams.AsSpan(r * span + q - minQ, count), kernel[k], acc, acc);
                    }
                    var o = (j0 * _new + i) - first;
                    for (var t = 0; t < count; t++, o += _new) output[(int)o] = acc[t];
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(streams);
            System.Buffers.ArrayPool<float>.Shared.Return(y);
        }
    }

    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);

    private static long CeilDiv(long a, long b) => -FloorDiv(-a, b);

    private static int Gcd(int a, int b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }
}
