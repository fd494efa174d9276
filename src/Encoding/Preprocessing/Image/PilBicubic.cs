using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace FreeBind.Encoding.Preprocessing.Image;

/// <summary>
/// Pillow's <c>Image.resize(size, BICUBIC)</c> for 8-bit RGB, reproduced exactly: Keys cubic with
/// a = −0.5, support widened by the downscale factor (antialiasing), coefficients normalised then
/// quantised to 22-bit fixed point, horizontal pass first, rounding to uint8 after each pass.
/// Parity is measured against PIL/torchvision, so Skia's own filters are not used.
/// </summary>
/// <remarks>
/// Every output pixel depends only on its own row and column coefficients, so a centre crop of
/// the resized image is computed directly: only the kept columns are filtered horizontally, only
/// over the source rows the kept rows read. The sums are exact int32 arithmetic (as in Pillow),
/// so the AVX2 kernels, which add the same products in another order, give identical bytes.
/// </remarks>
public static class PilBicubic
{
    private const int PrecisionBits = 32 - 8 - 2;
    private const int Half = 1 << (PrecisionBits - 1);
    private const double Support = 2.0;

    public static RgbImage Resize(RgbImage src, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        if (width == src.Width && height == src.Height)
            return new RgbImage(width, height, (byte[])src.Pixels.Clone());
        if ((long)width * height * 3 > Array.MaxLength)
            throw new MediaException(MediaErrorKind.TooManyPixels, "image too large to resize");

        using var rgbx = RgbxBuffer.From(src);
        var dst = new byte[width * height * 3];
        ResizeRegion(rgbx, width, height, 0, 0, width, height, dst);
        return new RgbImage(width, height, dst);
    }

    /// <summary>
    /// Pixels [left, left + cropWidth) × [top, top + cropHeight) of the source resized to
    /// width × height, written as interleaved RGB (cropWidth·cropHeight·3 bytes) to
    /// <paramref name="dst"/>. An axis whose size does not change is copied, as Pillow skips it.
    /// </summary>
    internal static void ResizeRegion(RgbxBuffer src, int width, int height, int left, int top, int cropWidth, int cropHeight, Span<byte> dst)
    {
        if (left < 0 || top < 0 || cropWidth <= 0 || cropHeight <= 0 || left + cropWidth > width || top + cropHeight > height)
            throw new ArgumentOutOfRangeException(nameof(left), "crop outside the resized image");
        if (dst.Length < cropWidth * cropHeight * 3)
            throw new ArgumentException("destination too small", nameof(dst));

        var h = Coefficients(src.Width, width, left, cropWidth);
        var v = Coefficients(src.Height, height, top, cropHeight);

        // Bounds grow with the output index, so the first and last kept rows span all rows read.
        var rowFirst = v.Bounds[0];
        var rowLast = v.Bounds[(cropHeight - 1) * 2] + v.Bounds[(cropHeight - 1) * 2 + 1];
        var rows = rowLast - rowFirst;
        var stride = cropWidth * 3;
        if ((long)stride * rows + RgbxBuffer.Slack > Array.MaxLength)
            throw new MediaException(MediaErrorKind.TooManyPixels, "image too large to resize");

        var mid = ArrayPool<byte>.Shared.Rent(stride * rows + RgbxBuffer.Slack);
        try
        {
            if (Avx2.IsSupported)
            {
                HorizontalAvx2(src.Buffer, src.Width, rowFirst, rows, mid, cropWidth, h);
                VerticalAvx2(mid, stride, rowFirst, dst, cropHeight, v);
            }
            else
            {
                HorizontalScalar(src.Buffer, src.Width, rowFirst, rows, mid, cropWidth, h);
                VerticalScalar(mid, stride, rowFirst, dst, cropHeight, v);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(mid);
        }
    }

    private static double Filter(double x)
    {
        const double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    /// <param name="Bounds">Per output: first input index and tap count.</param>
    /// <param name="K">Per output: <paramref name="KSize"/> fixed-point weights, zero past the tap count.</param>
    /// <param name="KSize">Even, so taps can be taken in pairs.</param>
    private readonly record struct Axis(int[] Bounds, int[] K, int KSize);

    /// <summary>
    /// Pillow's precompute_coeffs + normalize_coeffs_8bpc for outputs [first, first + count) of
    /// one axis; the identity (one tap of weight 1.0) when the size does not change, which gives
    /// exactly the bytes of Pillow skipping that pass.
    /// </summary>
    private static Axis Coefficients(int inSize, int outSize, int first, int count)
    {
        var bounds = new int[count * 2];
        if (inSize == outSize)
        {
            var identity = new int[count * 2];
            for (var i = 0; i < count; i++)
            {
                bounds[i * 2] = first + i;
                bounds[i * 2 + 1] = 1;
                identity[i * 2] = 1 << PrecisionBits;
            }
            return new Axis(bounds, identity, 2);
        }

        double scale = (double)inSize / outSize;
        var filterScale = scale < 1.0 ? 1.0 : scale;
        var support = Support * filterScale;
        var kSize = (int)Math.Ceiling(support) * 2 + 1;
        var kStride = kSize + 1 & ~1;

        var kk = new int[count * kStride];
        var weights = new double[kSize];
        for (var i = 0; i < count; i++)
        {
            var xx = first + i;
            var center = (xx + 0.5) * scale;
            var ss = 1.0 / filterScale;
            var xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            var xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;

            var ww = 0.0;
            for (var x = 0; x < xmax; x++)
            {
                var w = Filter((x + xmin - center + 0.5) * ss);
                weights[x] = w;
                ww += w;
            }

            for (var x = 0; x < xmax; x++)
            {
                var w = ww != 0.0 ? weights[x] / ww : weights[x];
                kk[i * kStride + x] = w < 0
                    ? (int)(-0.5 + w * (1 << PrecisionBits))
                    : (int)(0.5 + w * (1 << PrecisionBits));
            }

            bounds[i * 2] = xmin;
            bounds[i * 2 + 1] = xmax;
        }

        return new Axis(bounds, kk, kStride);
    }

    private static byte Clip8(int v)
    {
        v >>= PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    /// <summary>Source rows [rowFirst, rowFirst + rows) (4 bytes per pixel) → kept columns, RGB.</summary>
    private static void HorizontalScalar(byte[] src, int srcWidth, int rowFirst, int rows, byte[] dst, int dstWidth, Axis axis)
    {
        var (bounds, kk, kSize) = axis;
        for (var y = 0; y < rows; y++)
        {
            var srcRow = (rowFirst + y) * srcWidth * 4;
            var dstRow = y * dstWidth * 3;
            for (var xx = 0; xx < dstWidth; xx++)
            {
                var xmin = bounds[xx * 2];
                var xmax = bounds[xx * 2 + 1];
                var k = xx * kSize;
                int s0 = Half, s1 = Half, s2 = Half;
                var p = srcRow + xmin * 4;
                for (var x = 0; x < xmax; x++, p += 4)
                {
                    var w = kk[k + x];
                    s0 += src[p] * w;
                    s1 += src[p + 1] * w;
                    s2 += src[p + 2] * w;
                }

                var o = dstRow + xx * 3;
                dst[o] = Clip8(s0);
                dst[o + 1] = Clip8(s1);
                dst[o + 2] = Clip8(s2);
            }
        }
    }

    /// <summary>Kept rows from the horizontally filtered rows (<paramref name="stride"/> bytes each).</summary>
    private static void VerticalScalar(byte[] src, int stride, int rowOffset, Span<byte> dst, int dstHeight, Axis axis)
    {
        var (bounds, kk, kSize) = axis;
        for (var yy = 0; yy < dstHeight; yy++)
        {
            var ymin = bounds[yy * 2] - rowOffset;
            var ymax = bounds[yy * 2 + 1];
            var k = yy * kSize;
            var dstRow = yy * stride;
            for (var c = 0; c < stride; c++)
            {
                var s = Half;
                var p = ymin * stride + c;
                for (var y = 0; y < ymax; y++, p += stride)
                    s += src[p] * kk[k + y];
                dst[dstRow + c] = Clip8(s);
            }
        }
    }

    /// <summary>8 bytes → 8 int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<int> Widen8(byte* p) =>
        Avx2.ConvertToVector256Int32(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<ulong>(p)).AsByte());

    /// <summary>
    /// Two source pixels per step: lanes 0–3 take pixel x (R, G, B, ignored) times its weight,
    /// lanes 4–7 pixel x + 1 times the next; the halves are added at the end. An odd tap count
    /// reads one pixel past the taps with weight 0 (inside the row or the buffer's slack).
    /// </summary>
    private static unsafe void HorizontalAvx2(byte[] src, int srcWidth, int rowFirst, int rows, byte[] dst, int dstWidth, Axis axis)
    {
        var (bounds, kk, kSize) = axis;
        // Pairs of weights broadcast to four lanes each, once for all rows.
        var pairs = kSize / 2;
        var expanded = ArrayPool<int>.Shared.Rent(dstWidth * pairs * 8 + 8);
        try
        {
            for (var i = 0; i < dstWidth * pairs; i++)
            {
                var w0 = kk[i * 2];
                var w1 = kk[i * 2 + 1];
                for (var l = 0; l < 4; l++)
                {
                    expanded[i * 8 + l] = w0;
                    expanded[i * 8 + 4 + l] = w1;
                }
            }

            fixed (byte* s = src, d = dst)
            fixed (int* b = bounds, w = expanded)
            {
                var half = Vector128.Create(Half);
                for (var y = 0; y < rows; y++)
                {
                    var srcRow = s + (long)(rowFirst + y) * srcWidth * 4;
                    var dstRow = d + (long)y * dstWidth * 3;
                    for (var xx = 0; xx < dstWidth; xx++)
                    {
                        var p = srcRow + b[xx * 2] * 4;
                        var n = (b[xx * 2 + 1] + 1) >> 1;
                        var k = w + xx * pairs * 8;
                        var acc = Vector256<int>.Zero;
                        for (var t = 0; t < n; t++, p += 8, k += 8)
                            acc += Widen8(p) * Vector256.Load(k);
                        var sum = acc.GetLower() + acc.GetUpper() + half;
                        var shifted = Sse2.ShiftRightArithmetic(sum, PrecisionBits);
                        var words = Sse2.PackSignedSaturate(shifted, shifted);
                        var bytes = Sse2.PackUnsignedSaturate(words, words);
                        // 4 bytes stored, the 4th overwritten by the next pixel (or slack).
                        Unsafe.WriteUnaligned(dstRow + xx * 3, bytes.AsUInt32().ToScalar());
                    }
                }
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(expanded);
        }
    }

    /// <summary>8 bytes of a row at a time, accumulating over the taps in registers.</summary>
    private static unsafe void VerticalAvx2(byte[] src, int stride, int rowOffset, Span<byte> dst, int dstHeight, Axis axis)
    {
        if (stride < 8)
        {
            VerticalScalar(src, stride, rowOffset, dst, dstHeight, axis);
            return;
        }
        var (bounds, kk, kSize) = axis;
        fixed (byte* s = src, d = dst)
        fixed (int* kp = kk)
        {
            var half = Vector256.Create(Half);
            for (var yy = 0; yy < dstHeight; yy++)
            {
                var first = s + (long)(bounds[yy * 2] - rowOffset) * stride;
                var ymax = bounds[yy * 2 + 1];
                var k = kp + yy * kSize;
                var dstRow = d + (long)yy * stride;
                for (var x = 0; ; x += 8)
                {
                    // The last block overlaps the previous one rather than leaving a tail.
                    if (x > stride - 8) x = stride - 8;
                    var acc = half;
                    var p = first + x;
                    for (var t = 0; t < ymax; t++, p += stride)
                        acc += Widen8(p) * Vector256.Create(k[t]);
                    var shifted = Avx2.ShiftRightArithmetic(acc, PrecisionBits);
                    var words = Sse2.PackSignedSaturate(shifted.GetLower(), shifted.GetUpper());
                    var bytes = Sse2.PackUnsignedSaturate(words, words);
                    Unsafe.WriteUnaligned(dstRow + x, bytes.AsUInt64().ToScalar());
                    if (x == stride - 8) break;
                }
            }
        }
    }
}
