using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using FreeBind.Persistence.Embeddings;

namespace FreeBind.Persistence.Cache;

/// <summary>
/// The bytes of a cache entry: the fused vector as little-endian float32, then, when atoms are
/// present, the marker <c>FBA1</c>, their count (uint16) and per atom the expert name and model
/// digest (uint16 length + UTF-8 each), its width (int32) and its values (float32). A value that
/// does not parse exactly is treated as a miss, never as data.
/// </summary>
internal static class CacheValue
{
    private static ReadOnlySpan<byte> Marker => "FBA1"u8;

    public static byte[] Write(ReadOnlySpan<float> vector, IReadOnlyList<Atom> atoms)
    {
        var size = vector.Length * sizeof(float);
        if (atoms.Count > 0)
            size += Marker.Length + 2 + atoms.Sum(a => 4 + Encoding.UTF8.GetByteCount(a.Expert) + Encoding.UTF8.GetByteCount(a.ModelDigest) + 4 + a.Vector.Length * sizeof(float));
        var bytes = new byte[size];
        var span = bytes.AsSpan();
        Floats(vector, ref span);
        if (atoms.Count == 0)
            return bytes;
        Marker.CopyTo(span);
        span = span[Marker.Length..];
        BinaryPrimitives.WriteUInt16LittleEndian(span, checked((ushort)atoms.Count));
        span = span[2..];
        foreach (var atom in atoms)
        {
            Text(atom.Expert, ref span);
            Text(atom.ModelDigest, ref span);
            BinaryPrimitives.WriteInt32LittleEndian(span, atom.Vector.Length);
            span = span[4..];
            Floats(atom.Vector.Span, ref span);
        }
        return bytes;
    }

    /// <summary>The entry, or null when the bytes are not a vector of <paramref name="dimension"/> (plus well-formed atoms).</summary>
    public static CachedEmbedding? Read(ReadOnlyMemory<byte> value, int dimension)
    {
        var span = value.Span;
        var vectorBytes = dimension * sizeof(float);
        if (span.Length < vectorBytes)
            return null;
        var vector = MemoryMarshal.Cast<byte, float>(span[..vectorBytes]).ToArray();
        span = span[vectorBytes..];
        if (span.IsEmpty)
            return new CachedEmbedding(vector, []);
        if (span.Length < Marker.Length + 2 || !span[..Marker.Length].SequenceEqual(Marker))
            return null;
        span = span[Marker.Length..];
        var count = BinaryPrimitives.ReadUInt16LittleEndian(span);
        span = span[2..];
        var atoms = new List<Atom>(count);
        for (var i = 0; i < count; i++)
        {
            if (!TryText(ref span, out var expert) || !TryText(ref span, out var digest) || span.Length < 4)
                return null;
            var width = BinaryPrimitives.ReadInt32LittleEndian(span);
            span = span[4..];
            if (width < 0 || span.Length < (long)width * sizeof(float))
                return null;
            atoms.Add(new Atom(expert, digest, MemoryMarshal.Cast<byte, float>(span[..(width * sizeof(float))]).ToArray()));
            span = span[(width * sizeof(float))..];
        }
        return span.IsEmpty ? new CachedEmbedding(vector, atoms) : null;
    }

    private static void Floats(ReadOnlySpan<float> values, ref Span<byte> span)
    {
        // Little-endian on every platform .NET runs this on; the cast keeps it one copy.
        MemoryMarshal.AsBytes(values).CopyTo(span);
        span = span[(values.Length * sizeof(float))..];
    }

    private static void Text(string value, ref Span<byte> span)
    {
        var n = Encoding.UTF8.GetBytes(value, span[2..]);
        BinaryPrimitives.WriteUInt16LittleEndian(span, checked((ushort)n));
        span = span[(2 + n)..];
    }

    private static bool TryText(ref ReadOnlySpan<byte> span, out string value)
    {
        value = "";
        if (span.Length < 2)
            return false;
        var n = BinaryPrimitives.ReadUInt16LittleEndian(span);
        if (span.Length < 2 + n)
            return false;
        value = Encoding.UTF8.GetString(span.Slice(2, n));
        span = span[(2 + n)..];
        return true;
    }
}
