using System.Buffers.Binary;
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
/// The parts of an ONNX model this project reads: graph nodes, constants and the input/output
/// signature. Used to validate files against a manifest and to extract projector weights.
/// </summary>
internal sealed class OnnxGraph
{
    public List<OnnxNode> Nodes { get; } = [];
    public Dictionary<string, OnnxTensor> Constants { get; } = new(StringComparer.Ordinal);
    public List<OnnxValueInfo> Inputs { get; } = [];
    public List<OnnxValueInfo> Outputs { get; } = [];
    public long OpsetVersion { get; private set; }

    /// <summary>Graph inputs that are real inputs, not initializers listed as inputs (older exporters).</summary>
    public IEnumerable<OnnxValueInfo> RealInputs => Inputs.Where(i => !Constants.ContainsKey(i.Name));

    /// <summary>Reads only the input/output signature (skips weights and nodes): cheap validation.</summary>
    public static OnnxGraph LoadSignature(string path) => Load(path, signatureOnly: true);

    public static OnnxGraph Load(string path) => Load(path, signatureOnly: false);

    private static OnnxGraph Load(string path, bool signatureOnly)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"cannot read ONNX file '{path}': {e.Message}", e);
        }
        try
        {
            return Parse(bytes, signatureOnly);
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
                // Initializers still matter for the signature: older exporters list them as inputs.
                if (field == 5) Constants[ReadTensorName(reader.ReadBytes())] = Placeholder;
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

    private static string ReadTensorName(ReadOnlySpan<byte> data)
    {
        var reader = new ProtoReader(data);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 8 && wire == 2) return reader.ReadString();
            reader.Skip(wire);
        }
        return "";
    }

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
