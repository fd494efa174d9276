using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace FreeBind.Encoding.Preprocessing;

/// <summary>An array read from a NumPy <c>.npy</c> file.</summary>
public sealed record NpyArray(int[] Shape, float[]? Floats, long[]? Longs)
{
    public long Count => Shape.Aggregate(1L, (a, d) => a * d);
}

/// <summary>
/// NumPy <c>.npy</c> format version 1.0 (little-endian float32 / int64, C order): what
/// <c>freebind preprocess</c> writes and the parity tests read.
/// </summary>
public static partial class Npy
{
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    public static void Write(string path, ModelTensor tensor)
    {
        using var stream = File.Create(path);
        Write(stream, tensor.Shape, tensor.Floats, tensor.Longs);
    }

    public static void Write(Stream stream, int[] shape, float[]? floats, long[]? longs)
    {
        var descr = floats is not null ? "<f4" : "<i8";
        var dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        var header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}";
        // Pad so that magic(6) + version(2) + length(2) + header + '\n' is a multiple of 64.
        var total = 10 + header.Length + 1;
        header += new string(' ', (64 - total % 64) % 64) + "\n";
        stream.Write(Magic);
        stream.Write([1, 0]);
        stream.Write(BitConverter.GetBytes((ushort)header.Length));
        stream.Write(System.Text.Encoding.ASCII.GetBytes(header));
        if (floats is not null) stream.Write(MemoryMarshal.AsBytes(floats.AsSpan()));
        else stream.Write(MemoryMarshal.AsBytes(longs!.AsSpan()));
    }

    public static NpyArray Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic))
            throw new InvalidDataException($"'{path}' is not a .npy file");
        var major = bytes[6];
        int headerLength, offset;
        if (major == 1)
        {
            headerLength = BitConverter.ToUInt16(bytes, 8);
            offset = 10;
        }
        else
        {
            headerLength = (int)BitConverter.ToUInt32(bytes, 8);
            offset = 12;
        }
        var header = System.Text.Encoding.ASCII.GetString(bytes, offset, headerLength);
        var descr = DescrPattern().Match(header).Groups[1].Value;
        if (header.Contains("'fortran_order': True", StringComparison.Ordinal))
            throw new InvalidDataException($"'{path}': Fortran order is not supported");
        var shapeText = ShapePattern().Match(header).Groups[1].Value;
        var shape = shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var data = bytes.AsSpan(offset + headerLength);
        return descr switch
        {
            "<f4" => new NpyArray(shape, MemoryMarshal.Cast<byte, float>(data).ToArray(), null),
            "<f8" => new NpyArray(shape, MemoryMarshal.Cast<byte, double>(data).ToArray().Select(d => (float)d).ToArray(), null),
            "<i8" => new NpyArray(shape, null, MemoryMarshal.Cast<byte, long>(data).ToArray()),
            "<i4" => new NpyArray(shape, null, MemoryMarshal.Cast<byte, int>(data).ToArray().Select(i => (long)i).ToArray()),
            _ => throw new InvalidDataException($"'{path}': dtype {descr} is not supported (float32, float64, int32, int64)"),
        };
    }

    [GeneratedRegex(@"'descr':\s*'([^']+)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'shape':\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
