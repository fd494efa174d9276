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
        for (var i = 0; i < m; i++)
        {
            var r = _bitReverse[i];
            re[r] = frame[2 * i];
            im[r] = frame[2 * i + 1];
        }
        // Iterative radix-2; the twiddle for a stage of span s is e^{-2πi k/(2s)} = table[k·N/(2s)].
        for (var size = 2; size <= m; size <<= 1)
        {
            var halfSize = size >> 1;
            var step = _n / size;
            for (var start = 0; start < m; start += size)
            {
                for (var k = 0; k < halfSize; k++)
                {
                    var wr = _cos[k * step];
                    var wi = _sin[k * step];
                    var a = start + k;
                    var b = a + halfSize;
                    var tr = re[b] * wr - im[b] * wi;
                    var ti = re[b] * wi + im[b] * wr;
                    re[b] = re[a] - tr;
                    im[b] = im[a] - ti;
                    re[a] += tr;
                    im[a] += ti;
                }
            }
        }
        // Split: X[k] = E[k] + W^k·O[k] with E, O the spectra of even and odd samples.
        power[0] = (re[0] + im[0]) * (re[0] + im[0]);
        power[m] = (re[0] - im[0]) * (re[0] - im[0]);
        for (var k = 1; k < m; k++)
        {
            var zr = re[k];
            var zi = im[k];
            var cr = re[m - k];
            var ci = -im[m - k];
            var er = 0.5 * (zr + cr);
            var ei = 0.5 * (zi + ci);
            // O = (Z − conj Z[m−k]) / 2i
            var odr = 0.5 * (zi - ci);
            var odi = -0.5 * (zr - cr);
            var wr = _cos[k];
            var wi = _sin[k];
            var xr = er + wr * odr - wi * odi;
            var xi = ei + wr * odi + wi * odr;
            power[k] = xr * xr + xi * xi;
        }
    }
}
