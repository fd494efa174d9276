using System.Buffers.Binary;
using SkiaSharp;

namespace FreeBind.Encoding.Preprocessing.Image;

/// <summary>
/// Untrusted bytes → <see cref="RgbImage"/> with SkiaSharp, matching PIL's
/// <c>ImageOps.exif_transpose(Image.open(f)).convert('RGB')</c>: alpha is dropped (not composited),
/// grey is replicated, no ICC colour management, GIF gives its first frame.
/// </summary>
public static class ImageDecoder
{
    /// <summary>Decodes one image; throws <see cref="MediaException"/> for anything it refuses.</summary>
    /// <param name="bytes">The encoded file.</param>
    /// <param name="maxPixels">Refuse, before decoding, images whose header declares more pixels.</param>
    public static RgbImage Decode(ReadOnlySpan<byte> bytes, long maxPixels)
    {
        using var pixels = DecodeRgbx(bytes, maxPixels);
        return pixels.ToRgbImage();
    }

    /// <summary>
    /// Decodes into a pooled 4-bytes-per-pixel buffer, EXIF orientation applied: what the vision
    /// profiles resample from, without the RGB copy (the caller disposes the result).
    /// </summary>
    internal static RgbxBuffer DecodeRgbx(ReadOnlySpan<byte> bytes, long maxPixels)
    {
        if (bytes.IsEmpty)
            throw new MediaException(MediaErrorKind.Truncated, "image is empty (0 bytes): the upload was cut off or never written");

        var format = Sniff(bytes);
        if (format is null)
            throw new MediaException(MediaErrorKind.UnsupportedFormat, "not a JPEG, PNG, WebP, GIF or BMP image (unrecognised file signature)");

        // Our own header read first, so a bomb is refused even if the codec would choke on it.
        if (TryHeaderSize(bytes, format.Value, out var hw, out var hh))
            CheckPixels(hw, hh, maxPixels);

        using var data = SKData.CreateCopy(bytes);
        // The codec takes ownership of the stream.
        using var codec = SKCodec.Create(new SKMemoryStream(data), out var created);
        if (codec is null)
        {
            throw created == SKCodecResult.IncompleteInput
                ? new MediaException(MediaErrorKind.Truncated, $"{format} image is truncated (header incomplete)")
                : new MediaException(MediaErrorKind.CorruptData, $"{format} image cannot be read: {created}");
        }

        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0)
            throw new MediaException(MediaErrorKind.CorruptData, $"{format} image declares {info.Width}x{info.Height} pixels");
        CheckPixels(info.Width, info.Height, maxPixels);

        // Unpremultiplied RGBA with no colour space: raw stored values, like PIL (which ignores ICC).
        // Skia writes straight into the pooled buffer; the alpha byte is ignored downstream.
        var target = new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var pixels = new RgbxBuffer(info.Width, info.Height);
        try
        {
            SKCodecResult result;
            unsafe
            {
                fixed (byte* p = pixels.Buffer)
                    result = codec.GetPixels(target, (IntPtr)p, new SKCodecOptions(0));
            }

            switch (result)
            {
                case SKCodecResult.Success:
                    break;
                case SKCodecResult.IncompleteInput:
                    // PIL refuses truncated files too ("image file is truncated"); a half-grey picture
                    // would silently poison the embedding.
                    throw new MediaException(MediaErrorKind.Truncated, $"{format} image is truncated (data ends before the last row)");
                case SKCodecResult.ErrorInInput:
                case SKCodecResult.InvalidInput:
                    throw new MediaException(MediaErrorKind.CorruptData, $"{format} image data is corrupt ({result})");
                default:
                    throw new MediaException(MediaErrorKind.UnsupportedFormat, $"{format} image variant cannot be decoded ({result})");
            }

            var oriented = Orient(pixels, codec.EncodedOrigin);
            if (!ReferenceEquals(oriented, pixels)) pixels.Dispose();
            return oriented;
        }
        catch
        {
            pixels.Dispose();
            throw;
        }
    }

    private static void CheckPixels(long width, long height, long maxPixels)
    {
        if (width * height > maxPixels)
            throw new MediaException(MediaErrorKind.TooManyPixels, $"image declares {width}x{height} = {width * height} pixels, above the limit of {maxPixels}");
    }

    /// <summary>EXIF orientation (same numbering as SKEncodedOrigin) applied like PIL's exif_transpose.</summary>
    internal static RgbImage Orient(RgbImage img, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft || (int)origin < 1 || (int)origin > 8)
            return img;
        using var rgbx = RgbxBuffer.From(img);
        using var oriented = Orient(rgbx, origin);
        return oriented.ToRgbImage();
    }

    /// <summary>Orientation on whole 4-byte pixels; returns <paramref name="img"/> itself when upright.</summary>
    private static RgbxBuffer Orient(RgbxBuffer img, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft || (int)origin < 1 || (int)origin > 8)
            return img;

        int w = img.Width, h = img.Height;
        var swap = (int)origin >= 5;
        int ow = swap ? h : w, oh = swap ? w : h;
        // The stored pixel (sx, sy) shown at display position (x, y) is affine in x and y:
        // index = s0 + x·dx + y·dy.
        var (s0, dx, dy) = origin switch
        {
            SKEncodedOrigin.TopRight => (w - 1, -1, w),                          // (w−1−x, y)
            SKEncodedOrigin.BottomRight => ((h - 1) * w + w - 1, -1, -w),        // (w−1−x, h−1−y)
            SKEncodedOrigin.BottomLeft => ((h - 1) * w, 1, -w),                  // (x, h−1−y)
            SKEncodedOrigin.LeftTop => (0, w, 1),                                // (y, x)
            SKEncodedOrigin.RightTop => ((h - 1) * w, -w, 1),                    // (y, h−1−x)
            SKEncodedOrigin.RightBottom => ((h - 1) * w + w - 1, -w, -1),        // (w−1−y, h−1−x)
            SKEncodedOrigin.LeftBottom => (w - 1, w, -1),                        // (w−1−y, x)
            _ => (0, 1, w),
        };
        var result = new RgbxBuffer(ow, oh);
        var src = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(img.Buffer.AsSpan(0, img.PixelBytes));
        var dst = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(result.Buffer.AsSpan(0, result.PixelBytes));
        for (var y = 0; y < oh; y++)
        {
            var s = s0 + y * dy;
            var row = dst.Slice(y * ow, ow);
            for (var x = 0; x < ow; x++, s += dx)
                row[x] = src[s];
        }
        return result;
    }

    internal enum Format { Jpeg, Png, Gif, Bmp, WebP }

    private static Format? Sniff(ReadOnlySpan<byte> b)
    {
        if (b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return Format.Jpeg;
        if (b.Length >= 8 && b[..8].SequenceEqual((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A])) return Format.Png;
        if (b.Length >= 6 && (b[..6].SequenceEqual("GIF87a"u8) || b[..6].SequenceEqual("GIF89a"u8))) return Format.Gif;
        if (b.Length >= 2 && b[0] == (byte)'B' && b[1] == (byte)'M') return Format.Bmp;
        if (b.Length >= 12 && b[..4].SequenceEqual("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8)) return Format.WebP;
        return null;
    }

    /// <summary>Dimensions from the fixed-position headers (PNG IHDR, GIF screen, BMP info header).</summary>
    private static bool TryHeaderSize(ReadOnlySpan<byte> b, Format format, out long width, out long height)
    {
        width = height = 0;
        switch (format)
        {
            case Format.Png when b.Length >= 24 && b[12..16].SequenceEqual("IHDR"u8):
                width = BinaryPrimitives.ReadUInt32BigEndian(b[16..]);
                height = BinaryPrimitives.ReadUInt32BigEndian(b[20..]);
                return true;
            case Format.Gif when b.Length >= 10:
                width = BinaryPrimitives.ReadUInt16LittleEndian(b[6..]);
                height = BinaryPrimitives.ReadUInt16LittleEndian(b[8..]);
                return true;
            case Format.Bmp when b.Length >= 26 && BinaryPrimitives.ReadUInt32LittleEndian(b[14..]) >= 40:
                width = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(b[18..]));
                height = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(b[22..]));
                return true;
            default:
                return false; // JPEG and WebP: the codec header (read without decoding) is checked instead
        }
    }
}
