using System.Buffers;

namespace FreeBind.Encoding.Preprocessing.Image;

/// <summary>
/// A decoded image in a pooled buffer, 4 bytes per pixel (R, G, B, then a byte that is ignored),
/// the layout Skia decodes to and Pillow keeps RGB in. The buffer has <see cref="Slack"/> spare
/// bytes past the last pixel so vector code may read a little beyond it. Return it with Dispose.
/// </summary>
internal sealed class RgbxBuffer : IDisposable
{
    public const int Slack = 16;

    private byte[]? _buffer;

    public RgbxBuffer(int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        var bytes = (long)width * height * 4 + Slack;
        if (bytes > Array.MaxLength)
            throw new MediaException(MediaErrorKind.TooManyPixels, $"{width}x{height} image does not fit in memory");
        Width = width;
        Height = height;
        _buffer = ArrayPool<byte>.Shared.Rent((int)bytes);
        // Slack is read (with zero weights) by the resampler: keep it finite and deterministic.
        _buffer.AsSpan((int)bytes - Slack, Slack).Clear();
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>Width·Height·4 pixel bytes followed by <see cref="Slack"/> bytes.</summary>
    public byte[] Buffer => _buffer ?? throw new ObjectDisposedException(nameof(RgbxBuffer));

    public int PixelBytes => Width * Height * 4;

    /// <summary>Copies an interleaved RGB image in (the public <see cref="RgbImage"/> entry points).</summary>
    public static RgbxBuffer From(RgbImage image)
    {
        var buffer = new RgbxBuffer(image.Width, image.Height);
        var src = image.Pixels;
        var dst = buffer.Buffer;
        for (int i = 0, o = 0; i < src.Length; i += 3, o += 4)
        {
            dst[o] = src[i];
            dst[o + 1] = src[i + 1];
            dst[o + 2] = src[i + 2];
            dst[o + 3] = 0;
        }
        return buffer;
    }

    /// <summary>The interleaved RGB copy (PIL's <c>convert('RGB')</c> drops alpha without compositing).</summary>
    public RgbImage ToRgbImage()
    {
        var src = Buffer;
        var rgb = new byte[Width * Height * 3];
        for (int i = 0, o = 0; o < rgb.Length; i += 4, o += 3)
        {
            rgb[o] = src[i];
            rgb[o + 1] = src[i + 1];
            rgb[o + 2] = src[i + 2];
        }
        return new RgbImage(Width, Height, rgb);
    }

    public void Dispose()
    {
        if (_buffer is { } b)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(b);
        }
    }
}
