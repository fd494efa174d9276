using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace FreeBind.Encoding.Onnx;

/// <summary>A float32 (or int64) constant of an ONNX graph: initializer or Constant node value.</summary>
internal sealed class OnnxTensor
{
    public required string Name { get; init; }
    public required long[] Dims { get; init; }
    public required int DataType { get; init; }
    public float[] Floats { get; init; } = [];
    public long[] Int64s { get; init; } = [];

    public const int Float = 1;
    public const int Int64 = 7;

    public long ElementCount => Dims.Aggregate(1L, (a, d) => a * d);
}

internal sealed record OnnxAttribute(string Name, float F, long I, OnnxTensor? T, long[] Ints, float[] Floats);

internal sealed record OnnxNode(string OpType, string Name, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
    IReadOnlyDictionary<string, OnnxAttribute> Attributes)
{
    public long Int(string name, long fallback) => Attributes.TryGetValue(name, out var a) ? a.I : fallback;
    public float Float(string name, float fallback) => Attributes.TryGetValue(name, out var a) ? a.F : fallback;
}

/// <summary>A graph input or output: name, element type, and dims (-1 for a symbolic dimension).</summary>
internal sealed record OnnxValueInfo(string Name, int ElementType, long[] Dims);

/// <summary>
/// An initializer stored outside the .onnx file (models over 2 GB): the file it lives in, relative
/// to the model's folder, and the byte range it needs there.
/// </summary>
internal sealed record OnnxExternalData(string Tensor, string Location, long Offset, long Length);

/// <summary>
/// The parts of an ONNX model this project reads: graph nodes, constants and the input/output
/// signature. Used to validate files against a manifest and to extract projector weights.
/// </summary>
internal sealed class OnnxGraph
{
    public List<OnnxNode> Nodes { get; } = [];
    public Dictionary<string, OnnxTensor> Constants { get; } = new(StringComparer.Ordinal);
    public List<OnnxValueInfo> Inputs { get; } = [];
    public List<OnnxValueInfo> Outputs { get; } = [];
    public List<OnnxExternalData> ExternalData { get; } = [];
    public long OpsetVersion { get; private set; }

    /// <summary>Graph inputs that are real inputs, not initializers listed as inputs (older exporters).</summary>
    public IEnumerable<OnnxValueInfo> RealInputs => Inputs.Where(i => !Constants.ContainsKey(i.Name));

    /// <summary>
    /// Reads only the input/output signature and where external weights live (skips weights and
    /// nodes): cheap validation. The file is memory-mapped, so the pages holding weights are never read.
    /// </summary>
    public static OnnxGraph LoadSignature(string path) => Mapped(path, signatureOnly: true);

    /// <summary>
    /// Reads the whole graph, constants included. Memory-mapped too: the parsed constants are the
    /// only copy of the weights on the managed heap (reading the file into an array first added a
    /// transient one, up to hundreds of MB for a space's projectors, that the GC returns late).
    /// </summary>
    public static OnnxGraph Load(string path) => Mapped(path, signatureOnly: false);

    // Parse copies what it keeps (names, dims, constants' values), so nothing refers to the mapping afterwards.
    private static unsafe OnnxGraph Mapped(string path, bool signatureOnly)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
            var length = stream.Length; // of the file a symlink points to
            if (length == 0) throw new InvalidDataException("the file is empty");
            if (length > int.MaxValue)
                throw new InvalidDataException("it is over 2 GB, which protobuf cannot hold; export the weights as external data (.onnx + .onnx.data)");
            using var map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
            using var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            try
            {
                return Parse(new ReadOnlySpan<byte>(pointer + view.PointerOffset, (int)length), signatureOnly);
            }
            finally
            {
                view.SafeMemoryMappedViewHandle.ReleasePointer();
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"cannot read ONNX file '{path}': {e.Message}", e);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}' is not a readable ONNX model: {e.Message}", e);
        }
    }

    public static OnnxGraph Parse(ReadOnlySpan<byte> model, bool signatureOnly = false)
    {
        var graph = new OnnxGraph();
        var reader = new ProtoReader(model);
        var sawGraph = false;
        while (reader.Next(out var field, out var wire))
        {
            if (field == 7 && wire == 2)
            {
                graph.ReadGraph(reader.ReadBytes(), signatureOnly);
                sawGraph = true;
            }
            else if (field == 8 && wire == 2)
            {
                var opset = new ProtoReader(reader.ReadBytes());
                string domain = "";
                long version = 0;
                while (opset.Next(out var f, out var w))
                {
                    if (f == 1 && w == 2) domain = opset.ReadString();
                    else if (f == 2 && w == 0) version = (long)opset.ReadVarint();
                    else opset.Skip(w);
                }
                if (domain is "" or "ai.onnx") graph.OpsetVersion = version;
            }
            else reader.Skip(wire);
        }
        if (!sawGraph) throw new InvalidDataException("no graph in model");
        return graph;
    }

    private void ReadGraph(ReadOnlySpan<byte> data, bool signatureOnly)
    {
        var reader = new ProtoReader(data);
        while (reader.Next(out var field, out var wire))
        {
            if (signatureOnly && field is 1 or 5)
            {
                // Initializers still matter for the signature: older exporters list them as inputs,
                // and an initializer stored outside the file must be there for the model to load.
                if (field == 5) Constants[ReadTensorHeader(reader.ReadBytes())] = Placeholder;
                else reader.Skip(wire);
                continue;
            }
            switch (field)
            {
                case 1 when wire == 2: Nodes.Add(ReadNode(reader.ReadBytes())); break;
                case 5 when wire == 2:
                    var t = ReadTensor(reader.ReadBytes());
                    Constants[t.Name] = t;
                    break;
                case 11 when wire == 2: Inputs.Add(ReadValueInfo(reader.ReadBytes())); break;
                case 12 when wire == 2: Outputs.Add(ReadValueInfo(reader.ReadBytes())); break;
                default: reader.Skip(wire); break;
            }
        }
        foreach (var node in Nodes)
            if (node.OpType == "Constant" && node.Attributes.TryGetValue("value", out var value) && value.T is { } tensor)
                Constants[node.Outputs[0]] = new OnnxTensor { Name = node.Outputs[0], Dims = tensor.Dims, DataType = tensor.DataType, Floats = tensor.Floats, Int64s = tensor.Int64s };
    }

    private static readonly OnnxTensor Placeholder = new() { Name = "", Dims = [], DataType = 0 };

    // Name and, for an external initializer, where its bytes are; the data itself is skipped.
    private string ReadTensorHeader(ReadOnlySpan<byte> data)
    {
        var reader = new ProtoReader(data);
        var dims = new List<long>();
        var entries = new Dictionary<string, string>(StringComparer.Ordinal);
        string name = "";
        int dataType = 0;
        var external = false;
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case 1: reader.ReadInt64s(wire, dims); break;
                case 2 when wire == 0: dataType = (int)reader.ReadVarint(); break;
                case 8 when wire == 2: name = reader.ReadString(); break;
                case 13 when wire == 2:
                    var entry = new ProtoReader(reader.ReadBytes());
                    string key = "", value = "";
                    while (entry.Next(out var f, out var w))
                    {
                        if (f == 1 && w == 2) key = entry.ReadString();
                        else if (f == 2 && w == 2) value = entry.ReadString();
                        else entry.Skip(w);
                    }
                    entries[key] = value;
                    break;
                case 14 when wire == 0: external = reader.ReadVarint() == 1; break;
                default: reader.Skip(wire); break;
            }
        }
        if (external)
        {
            if (!entries.TryGetValue("location", out var location) || location.Length == 0)
                throw new InvalidDataException($"tensor '{name}' is stored externally but names no location");
            var offset = Number(entries, "offset", name) ?? 0;
            var length = Number(entries, "length", name) ?? dims.Aggregate(1L, (a, d) => a * d) * ElementSize(dataType, name);
            ExternalData.Add(new OnnxExternalData(name, location, offset, length));
        }
        return name;
    }

    private static long? Number(Dictionary<string, string> entries, string key, string tensor)
    {
        if (!entries.TryGetValue(key, out var text)) return null;
        return long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new InvalidDataException($"tensor '{tensor}': external data {key} '{text}' is not a byte count");
    }

    // TensorProto.DataType → bytes per element.
    private static long ElementSize(int dataType, string tensor) => dataType switch
    {
        2 or 3 or 9 => 1,           // uint8, int8, bool
        4 or 5 or 10 or 16 => 2,    // uint16, int16, float16, bfloat16
        1 or 6 or 12 => 4,          // float, int32, uint32
        7 or 11 or 13 or 14 => 8,   // int64, double, uint64, complex64
        15 => 16,                   // complex128
        _ => throw new InvalidDataException($"tensor '{tensor}' is stored externally with element type {dataType}, whose size is unknown; give its length"),
    };

    private static OnnxNode ReadNode(ReadOnlySpan<byte> data)
    {
        var reader = new ProtoReader(data);
        var inputs = new List<string>();
        var outputs = new List<string>();
        var attributes = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        string op = "", name = "";
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case 1 when wire == 2: inputs.Add(reader.ReadString()); break;
                case 2 when wire == 2: outputs.Add(reader.ReadString()); break;
                case 3 when wire == 2: name = reader.ReadString(); break;
                case 4 when wire == 2: op = reader.ReadString(); break;
                case 5 when wire == 2:
                    var a = ReadAttribute(reader.ReadBytes());
                    attributes[a.Name] = a;
                    break;
                default: reader.Skip(wire); break;
            }
        }
        return new OnnxNode(op, name, inputs, outputs, attributes);
    }

    private static OnnxAttribute ReadAttribute(ReadOnlySpan<byte> data)
    {
        var reader = new ProtoReader(data);
        string name = "";
        float f = 0;
        long i = 0;
        OnnxTensor? t = null;
        var ints = new List<long>();
        var floats = new List<float>();
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case 1 when wire == 2: name = reader.ReadString(); break;
                case 2 when wire == 5: f = reader.ReadFixed32Float(); break;
                case 3 when wire == 0: i = (long)reader.ReadVarint(); break;
                case 5 when wire == 2: t = ReadTensor(reader.ReadBytes()); break;
                case 7: reader.ReadFloats(wire, floats); break;
                case 8: reader.ReadInt64s(wire, ints); break;
                default: reader.Skip(wire); break;
            }
        }
        return new OnnxAttribute(name, f, i, t, [.. ints], [.. floats]);
    }

    private static OnnxTensor ReadTensor(ReadOnlySpan<byte> data)
    {
        var reader = new ProtoReader(data);
        var dims = new List<long>();
        var floats = new List<float>();
        var int64s = new List<long>();
        int dataType = 0;
        string name = "";
        ReadOnlySpan<byte> raw = default;
        var external = false;
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case 1: reader.ReadInt64s(wire, dims); break;
                case 2 when wire == 0: dataType = (int)reader.ReadVarint(); break;
                case 4: reader.ReadFloats(wire, floats); break;
                case 7: reader.ReadInt64s(wire, int64s); break;
                case 8 when wire == 2: name = reader.ReadString(); break;
                case 9 when wire == 2: raw = reader.ReadBytes(); break;
                case 14 when wire == 0: external = reader.ReadVarint() == 1; break;
                default: reader.Skip(wire); break;
            }
        }
        if (external) throw new InvalidDataException($"tensor '{name}' uses external data, which is not supported; export with the weights inside the .onnx file");
        var count = dims.Aggregate(1L, (a, d) => a * d);
        float[] f = [];
        long[] l = [];
        if (dataType == OnnxTensor.Float)
        {
            f = raw.Length > 0 ? MemoryMarshal.Cast<byte, float>(raw).ToArray() : [.. floats];
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian hosts are not supported");
            if (f.Length != count) throw new InvalidDataException($"tensor '{name}' has {f.Length} floats but dims need {count}");
        }
        else if (dataType == OnnxTensor.Int64)
        {
            if (raw.Length > 0)
            {
                l = new long[raw.Length / 8];
                for (var k = 0; k < l.Length; k++) l[k] = BinaryPrimitives.ReadInt64LittleEndian(raw.Slice(k * 8, 8));
            }
            else l = [.. int64s];
        }
        return new OnnxTensor { Name = name, Dims = [.. dims], DataType = dataType, Floats = f, Int64s = l };
    }

    private static OnnxValueInfo ReadValueInfo(ReadOnlySpan<byte> data)
    {
        var reader = new ProtoReader(data);
        string name = "";
        int elemType = 0;
        var dims = new List<long>();
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == 2) name = reader.ReadString();
            else if (field == 2 && wire == 2)
            {
                var type = new ProtoReader(reader.ReadBytes());
                while (type.Next(out var tf, out var tw))
                {
                    if (tf != 1 || tw != 2)
                    {
                        type.Skip(tw);
                        continue;
                    }
                    var tensorType = new ProtoReader(type.ReadBytes());
                    while (tensorType.Next(out var f, out var w))
                    {
                        if (f == 1 && w == 0) elemType = (int)tensorType.ReadVarint();
                        else if (f == 2 && w == 2)
                        {
                            var shape = new ProtoReader(tensorType.ReadBytes());
                            while (shape.Next(out var sf, out var sw))
                            {
                                if (sf != 1 || sw != 2)
                                {
                                    shape.Skip(sw);
                                    continue;
                                }
                                var dim = new ProtoReader(shape.ReadBytes());
                                long value = -1;
                                while (dim.Next(out var df, out var dw))
                                {
                                    if (df == 1 && dw == 0) value = (long)dim.ReadVarint();
                                    else dim.Skip(dw);
                                }
                                dims.Add(value);
                            }
                        }
                        else tensorType.Skip(w);
                    }
                }
            }
            else reader.Skip(wire);
        }
        return new OnnxValueInfo(name, elemType, [.. dims]);
    }
}
