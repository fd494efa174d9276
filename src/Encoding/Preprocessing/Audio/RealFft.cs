using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace FreeBind.Encoding.Preprocessing.Audio;

/// <summary>
/// Power spectrum |X[k]|², k = 0 … N/2, of a real frame of power-of-two length N: one complex
/// radix-2 FFT of N/2 points over (even, odd) sample pairs, then the split step. Double precision so
/// our side adds no rounding of its own; tables are precomputed, calls allocate nothing.
/// </summary>
internal sealed class RealFft
{
    private readonly int _n;
    private readonly int _half;
    private readonly int[] _bitReverse;
    private readonly double[] _cos; // e^{-2πik/N}, k < N/2
    private readonly double[] _sin;
    private readonly double[] _stageCos; // twiddles of the stage with half-span h at [h, 2h), contiguous
    private readonly double[] _stageSin;

    public RealFft(int n)
    {
        if (n < 4 || (n & (n - 1)) != 0) throw new ArgumentOutOfRangeException(nameof(n), "FFT size must be a power of two ≥ 4");
        _n = n;
        _half = n / 2;
        var bits = System.Numerics.BitOperations.Log2((uint)_half);
        _bitReverse = new int[_half];
        for (var i = 0; i < _half; i++)
        {
            var r = 0;
            for (var b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
            _bitReverse[i] = r;
        }
        _cos = new double[_half];
        _sin = new double[_half];
        for (var k = 0; k < _half; k++)
        {
            _cos[k] = Math.Cos(2 * Math.PI * k / n);
            _sin[k] = -Math.Sin(2 * Math.PI * k / n);
        }
        _stageCos = new double[_half];
        _stageSin = new double[_half];
        for (var halfSize = 1; halfSize < _half; halfSize <<= 1)
        {
            var step = _n / (2 * halfSize);
            for (var k = 0; k < halfSize; k++)
            {
                _stageCos[halfSize + k] = _cos[k * step];
                _stageSin[halfSize + k] = _sin[k * step];
            }
        }
    }

    public int Size => _n;

    /// <summary>Scratch length a caller must provide.</summary>
    public int ScratchLength => _n;

    /// <param name="frame">N real samples.</param>
    /// <param name="power">N/2 + 1 outputs.</param>
    /// <param name="scratch">At least <see cref="ScratchLength"/> doubles.</param>
    public void Power(ReadOnlySpan<double> frame, Span<double> power, Span<double> scratch)
    {
        var m = _half;
        var re = scratch[..m];
        var im = scratch.Slice(m, m);
        if (frame.Length < _n || power.Length < m + 1 || scratch.Length < _n)
            throw new ArgumentException("buffers shorter than the FFT size");
        ref var re0 = ref MemoryMarshal.GetReference(re);
        ref var im0 = ref MemoryMarshal.GetReference(im);
        ref var f0 = ref MemoryMarshal.GetReference(frame);
        ref var rev = ref MemoryMarshal.GetArrayDataReference(_bitReverse);
        for (var i = 0; i < m; i++)
        {
            var r = (nuint)Unsafe.Add(ref rev, i);
            Unsafe.Add(ref re0, r) = Unsafe.Add(ref f0, 2 * i);
            Unsafe.Add(ref im0, r) = Unsafe.Add(ref f0, 2 * i + 1);
        }
        // Iterative radix-2; the twiddle for a stage of span s is e^{-2πi k/(2s)} = table[k·N/(2s)].
        // Spans of 8 and more run four butterflies at a time with the same per-element operations
        // (no fused multiply-add), so the result is bit-identical to the scalar loop.
        for (var size = 2; size <= m; size <<= 1)
        {
            var halfSize = size >> 1;
            if (Vector256.IsHardwareAccelerated && halfSize >= Vector256<double>.Count)
            {
                ref var r0 = ref re0;
                ref var i0 = ref im0;
                ref var c0 = ref MemoryMarshal.GetArrayDataReference(_stageCos);
                ref var s0 = ref MemoryMarshal.GetArrayDataReference(_stageSin);
                for (var start = 0; start < m; start += size)
                {
                    for (var k = 0; k < halfSize; k += Vector256<double>.Count)
                    {
                        var wr = Vector256.LoadUnsafe(ref c0, (nuint)(halfSize + k));
                        var wi = Vector256.LoadUnsafe(ref s0, (nuint)(halfSize + k));
                        var a = (nuint)(start + k);
                        var b = a + (nuint)halfSize;
                        var ar = Vector256.LoadUnsafe(ref r0, a);
                        var ai = Vector256.LoadUnsafe(ref i0, a);
                        var br = Vector256.LoadUnsafe(ref r0, b);
                        var bi = Vector256.LoadUnsafe(ref i0, b);
                        var tr = br * wr - bi * wi;
                        var ti = br * wi + bi * wr;
                        (ar - tr).StoreUnsafe(ref r0, b);
                        (ai - ti).StoreUnsafe(ref i0, b);
                        (ar + tr).StoreUnsafe(ref r0, a);
                        (ai + ti).StoreUnsafe(ref i0, a);
                    }
                }
                continue;
            }
            ref var sc = ref MemoryMarshal.GetArrayDataReference(_stageCos);
            ref var ss = ref MemoryMarshal.GetArrayDataReference(_stageSin);
            for (var start = 0; start < m; start += size)
            {
                for (var k = 0; k < halfSize; k++)
                {
                    var wr = Unsafe.Add(ref sc, halfSize + k);
                    var wi = Unsafe.Add(ref ss, halfSize + k);
                    ref var ar = ref Unsafe.Add(ref re0, start + k);
                    ref var ai = ref Unsafe.Add(ref im0, start + k);
                    ref var br = ref Unsafe.Add(ref ar, halfSize);
                    ref var bi = ref Unsafe.Add(ref ai, halfSize);
                    var tr = br * wr - bi * wi;
                    var ti = br * wi + bi * wr;
                    br = ar - tr;
                    bi = ai - ti;
                    ar += tr;
                    ai += ti;
                }
            }
        }
        // Split: X[k] = E[k] + W^k·O[k] with E, O the spectra of even and odd samples.
        power[0] = (re[0] + im[0]) * (re[0] + im[0]);
        power[m] = (re[0] - im[0]) * (re[0] - im[0]);
        ref var p0 = ref MemoryMarshal.GetReference(power);
        ref var cos0 = ref MemoryMarshal.GetArrayDataReference(_cos);
        ref var sin0 = ref MemoryMarshal.GetArrayDataReference(_sin);
        for (var k = 1; k < m; k++)
        {
            var zr = Unsafe.Add(ref re0, k);
            var zi = Unsafe.Add(ref im0, k);
            var cr = Unsafe.Add(ref re0, m - k);
            var ci = -Unsafe.Add(ref im0, m - k);
            var er = 0.5 * (zr + cr);
            var ei = 0.5 * (zi + ci);
            // O = (Z − conj Z[m−k]) / 2i
            var odr = 0.5 * (zi - ci);
            var odi = -0.5 * (zr - cr);
            var wr = Unsafe.Add(ref cos0, k);
            var wi = Unsafe.Add(ref sin0, k);
            var xr = er + wr * odr - wi * odi;
            var xi = ei + wr * odi + wi * odr;
            Unsafe.Add(ref p0, k) = xr * xr + xi * xi;
        }
    }
}
