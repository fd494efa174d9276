using System.Buffers.Binary;
using System.Text;

namespace FreeBind.Encoding.Onnx;

/// <summary>
/// The handful of protobuf wire-format primitives needed to read and write ONNX files. ONNX is a
/// small, stable schema; a generated protobuf binding would pull a dependency for ~30 fields.
/// </summary>
internal ref struct ProtoReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _pos;

    public readonly bool End => _pos >= _data.Length;

    /// <summary>Reads the next tag; returns false at the end of the message.</summary>
    public bool Next(out int field, out int wireType)
    {
        if (End)
        {
            field = 0;
            wireType = 0;
            return false;
        }
        var tag = ReadVarint();
        field = (int)(tag >> 3);
        wireType = (int)(tag & 7);
        if (field == 0) throw new InvalidDataException("corrupt protobuf: field number 0");
        return true;
    }

    public ulong ReadVarint()
    {
        ulong result = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (_pos >= _data.Length) throw new InvalidDataException("corrupt protobuf: truncated varint");
            var b = _data[_pos++];
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
        throw new InvalidDataException("corrupt protobuf: varint too long");
    }

    public ReadOnlySpan<byte> ReadBytes()
    {
        var length = ReadVarint();
        if (length > (ulong)(_data.Length - _pos)) throw new InvalidDataException("corrupt protobuf: length past end of data");
        var slice = _data.Slice(_pos, (int)length);
        _pos += (int)length;
        return slice;
    }

    public string ReadString() => System.Text.Encoding.UTF8.GetString(ReadBytes());

    public float ReadFixed32Float()
    {
        if (_pos + 4 > _data.Length) throw new InvalidDataException("corrupt protobuf: truncated fixed32");
        var v = BinaryPrimitives.ReadSingleLittleEndian(_data.Slice(_pos, 4));
        _pos += 4;
        return v;
    }

    public void Skip(int wireType)
    {
        switch (wireType)
        {
            case 0: ReadVarint(); break;
            case 1: _pos += 8; break;
            case 2: ReadBytes(); break;
            case 5: _pos += 4; break;
            default: throw new InvalidDataException($"corrupt protobuf: unsupported wire type {wireType}");
        }
        if (_pos > _data.Length) throw new InvalidDataException("corrupt protobuf: field past end of data");
    }

    /// <summary>Reads a repeated int64 field that may be packed (wire type 2) or not (0).</summary>
    public void ReadInt64s(int wireType, List<long> into)
    {
        if (wireType == 0)
        {
            into.Add((long)ReadVarint());
            return;
        }
        var inner = new ProtoReader(ReadBytes());
        while (!inner.End) into.Add((long)inner.ReadVarint());
    }

    /// <summary>Reads a repeated float field that may be packed (2) or not (5).</summary>
    public void ReadFloats(int wireType, List<float> into)
    {
        if (wireType == 5)
        {
            into.Add(ReadFixed32Float());
            return;
        }
        var bytes = ReadBytes();
        for (var i = 0; i + 4 <= bytes.Length; i += 4)
            into.Add(BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(i, 4)));
    }
}

/// <summary>Protobuf writer building nested messages bottom-up.</summary>
/// <param name="capacity">
/// Bytes to reserve. A writer that will hold a mixture's weights (hundreds of MB) is sized up front:
/// a growing stream would allocate about twice its final size in discarded buffers.
/// </param>
internal sealed class ProtoWriter(int capacity = 0)
{
    private readonly MemoryStream _buffer = new(capacity);

    /// <summary>Bytes written so far.</summary>
    public int Length => (int)_buffer.Length;

    public byte[] ToArray() => _buffer.ToArray();

    /// <summary>This writer's bytes followed by <paramref name="message"/> as field <paramref name="field"/>, in one array of the exact size.</summary>
    public byte[] ToArray(int field, ProtoWriter message)
    {
        var tail = new ProtoWriter(16);
        tail.Tag(field, 2);
        tail.WriteVarint((ulong)message.Length);
        var result = new byte[Length + tail.Length + message.Length];
        Written.CopyTo(result);
        tail.Written.CopyTo(result.AsSpan(Length));
        message.Written.CopyTo(result.AsSpan(Length + tail.Length));
        return result;
    }

    /// <summary>
    /// Writes a float tensor (ONNX <c>TensorProto</c>: dims, data type, name, raw data) as field
    /// <paramref name="field"/> straight into this writer, without a nested writer holding a copy of its data.
    /// </summary>
    public ProtoWriter FloatTensor(int field, string name, long[] dims, int dataType, ReadOnlySpan<byte> data)
    {
        var nameBytes = System.Text.Encoding.UTF8.GetBytes(name);
        var length = 0;
        foreach (var d in dims) length += 1 + VarintSize((ulong)d);
        length += 1 + VarintSize((ulong)dataType);
        length += 1 + VarintSize((ulong)nameBytes.Length) + nameBytes.Length;
        length += 1 + VarintSize((ulong)data.Length) + data.Length;
        Tag(field, 2);
        WriteVarint((ulong)length);
        var start = Length;
        foreach (var d in dims) Varint(1, d);
        Varint(2, dataType).Bytes(8, nameBytes).Bytes(9, data);
        if (Length - start != length) throw new InvalidOperationException($"tensor {name}: wrote {Length - start} bytes, announced {length}");
        return this;
    }

    private static int VarintSize(ulong value)
    {
        var size = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            size++;
        }
        return size;
    }

    private ReadOnlySpan<byte> Written => _buffer.GetBuffer().AsSpan(0, Length);

    public ProtoWriter Varint(int field, long value)
    {
        Tag(field, 0);
        WriteVarint((ulong)value);
        return this;
    }

    public ProtoWriter Float(int field, float value)
    {
        Tag(field, 5);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(b, value);
        _buffer.Write(b);
        return this;
    }

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, 2);
        WriteVarint((ulong)value.Length);
        _buffer.Write(value);
        return this;
    }

    public ProtoWriter String(int field, string value) => Bytes(field, System.Text.Encoding.UTF8.GetBytes(value));

    // Copied from the nested writer's own buffer: no intermediate array per nesting level.
    public ProtoWriter Message(int field, ProtoWriter message) => Bytes(field, message.Written);

    public ProtoWriter PackedInt64s(int field, IEnumerable<long> values)
    {
        var inner = new ProtoWriter();
        foreach (var v in values) inner.WriteVarint((ulong)v);
        return Bytes(field, inner.ToArray());
    }

    private void Tag(int field, int wireType) => WriteVarint((ulong)((field << 3) | wireType));

    private void WriteVarint(ulong value)
    {
        while (value >= 0x80)
        {
            _buffer.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        _buffer.WriteByte((byte)value);
    }
}
