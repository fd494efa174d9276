namespace FreeBind.Encoding.Preprocessing.Image;

/// <summary>
/// Pillow's <c>Image.resize(size, BICUBIC)</c> for 8-bit RGB, reproduced exactly: Keys cubic with
/// a = −0.5, support widened by the downscale factor (antialiasing), coefficients normalised then
/// quantised to 22-bit fixed point, horizontal pass first, rounding to uint8 after each pass.
/// Parity is measured against PIL/torchvision, so Skia's own filters are not used.
/// </summary>
public static class PilBicubic
{
    private const int PrecisionBits = 32 - 8 - 2;
    private const double Support = 2.0;

    public static RgbImage Resize(RgbImage src, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        if (width == src.Width && height == src.Height)
            return new RgbImage(width, height, (byte[])src.Pixels.Clone());

        var (hBounds, hK, hSize) = Coefficients(src.Width, width);
        var (vBounds, vK, vSize) = Coefficients(src.Height, height);

        var needH = width != src.Width;
        var needV = height != src.Height;

        // Only the source rows the vertical pass reads are filtered horizontally (as Pillow does).
        var rowFirst = vBounds[0];
        var rowLast = vBounds[(height - 1) * 2] + vBounds[(height - 1) * 2 + 1];

        byte[] mid;
        int midRows, midRowOffset;
        if (needH)
        {
            midRows = rowLast - rowFirst;
            mid = new byte[(long)width * midRows * 3 <= int.MaxValue ? width * midRows * 3 : throw new MediaException(MediaErrorKind.TooManyPixels, "image too large to resize")];
            Horizontal(src.Pixels, src.Width, rowFirst, midRows, mid, width, hBounds, hK, hSize);
            midRowOffset = rowFirst;
        }
        else
        {
            mid = src.Pixels;
            midRows = src.Height;
            midRowOffset = 0;
        }

        if (!needV)
            return new RgbImage(width, height, mid);

        var dst = new byte[width * height * 3];
        Vertical(mid, width, midRowOffset, dst, height, vBounds, vK, vSize);
        return new RgbImage(width, height, dst);
    }

    private static double Filter(double x)
    {
        const double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    /// <summary>Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis.</summary>
    private static (int[] Bounds, int[] K, int KSize) Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        var filterScale = scale < 1.0 ? 1.0 : scale;
        var support = Support * filterScale;
        var kSize = (int)Math.Ceiling(support) * 2 + 1;

        var bounds = new int[outSize * 2];
        var kk = new int[outSize * kSize];
        var weights = new double[kSize];
        for (var xx = 0; xx < outSize; xx++)
        {
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
                kk[xx * kSize + x] = w < 0
                    ? (int)(-0.5 + w * (1 << PrecisionBits))
                    : (int)(0.5 + w * (1 << PrecisionBits));
            }

            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }

        return (bounds, kk, kSize);
    }

    private static byte Clip8(int v)
    {
        v >>= PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    private static void Horizontal(byte[] src, int srcWidth, int rowFirst, int rows, byte[] dst, int dstWidth, int[] bounds, int[] kk, int kSize)
    {
        const int half = 1 << (PrecisionBits - 1);
        for (var y = 0; y < rows; y++)
        {
            var srcRow = (rowFirst + y) * srcWidth * 3;
            var dstRow = y * dstWidth * 3;
            for (var xx = 0; xx < dstWidth; xx++)
            {
                var xmin = bounds[xx * 2];
                var xmax = bounds[xx * 2 + 1];
                var k = xx * kSize;
                int s0 = half, s1 = half, s2 = half;
                var p = srcRow + xmin * 3;
                for (var x = 0; x < xmax; x++, p += 3)
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

    private static void Vertical(byte[] src, int width, int rowOffset, byte[] dst, int dstHeight, int[] bounds, int[] kk, int kSize)
    {
        const int half = 1 << (PrecisionBits - 1);
        var stride = width * 3;
        for (var yy = 0; yy < dstHeight; yy++)
        {
            var ymin = bounds[yy * 2] - rowOffset;
            var ymax = bounds[yy * 2 + 1];
            var k = yy * kSize;
            var dstRow = yy * stride;
            for (var c = 0; c < stride; c++)
            {
                var s = half;
                var p = ymin * stride + c;
                for (var y = 0; y < ymax; y++, p += stride)
                    s += src[p] * kk[k + y];
                dst[dstRow + c] = Clip8(s);
            }
        }
    }
}
