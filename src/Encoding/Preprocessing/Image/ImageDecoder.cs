using System.Buffers.Binary;
using System.Runtime.InteropServices;
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
        var target = new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[(long)info.Width * info.Height * 4 <= Array.MaxLength
            ? info.Width * info.Height * 4
            : throw new MediaException(MediaErrorKind.TooManyPixels, $"{info.Width}x{info.Height} image does not fit in memory")];
        SKCodecResult result;
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        try
        {
            result = codec.GetPixels(target, handle.AddrOfPinnedObject(), new SKCodecOptions(0));
        }
        finally
        {
            handle.Free();
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

        var rgb = DropAlpha(rgba, info.Width, info.Height);
        return Orient(rgb, codec.EncodedOrigin);
    }

    private static void CheckPixels(long width, long height, long maxPixels)
    {
        if (width * height > maxPixels)
            throw new MediaException(MediaErrorKind.TooManyPixels, $"image declares {width}x{height} = {width * height} pixels, above the limit of {maxPixels}");
    }

    private static RgbImage DropAlpha(byte[] rgba, int width, int height)
    {
        var rgb = new byte[width * height * 3];
        for (int i = 0, o = 0; o < rgb.Length; i += 4, o += 3)
        {
            rgb[o] = rgba[i];
            rgb[o + 1] = rgba[i + 1];
            rgb[o + 2] = rgba[i + 2];
        }

        return new RgbImage(width, height, rgb);
    }

    /// <summary>EXIF orientation (same numbering as SKEncodedOrigin) applied like PIL's exif_transpose.</summary>
    internal static RgbImage Orient(RgbImage img, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft || (int)origin < 1 || (int)origin > 8)
            return img;

        int w = img.Width, h = img.Height;
        var swap = (int)origin >= 5;
        int ow = swap ? h : w, oh = swap ? w : h;
        var dst = new byte[img.Pixels.Length];
        var src = img.Pixels;
        for (var y = 0; y < oh; y++)
        {
            for (var x = 0; x < ow; x++)
            {
                // (sx, sy): the stored pixel shown at display position (x, y).
                var (sx, sy) = origin switch
                {
                    SKEncodedOrigin.TopRight => (w - 1 - x, y),
                    SKEncodedOrigin.BottomRight => (w - 1 - x, h - 1 - y),
                    SKEncodedOrigin.BottomLeft => (x, h - 1 - y),
                    SKEncodedOrigin.LeftTop => (y, x),
                    SKEncodedOrigin.RightTop => (y, h - 1 - x),
                    SKEncodedOrigin.RightBottom => (w - 1 - y, h - 1 - x),
                    SKEncodedOrigin.LeftBottom => (w - 1 - y, x),
                    _ => (x, y),
                };
                var s = (sy * w + sx) * 3;
                var d = (y * ow + x) * 3;
                dst[d] = src[s];
                dst[d + 1] = src[s + 1];
                dst[d + 2] = src[s + 2];
            }
        }

        return new RgbImage(ow, oh, dst);
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
