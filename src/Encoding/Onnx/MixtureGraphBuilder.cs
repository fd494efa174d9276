using System.Runtime.InteropServices;

namespace FreeBind.Encoding.Onnx;

/// <summary>
/// Compiles a projector mixture <c>M(x) = n(mean_k P_k(x))</c> into one ONNX graph. Per projector
/// set the first layers of all its projectors run as one wide GEMM (<c>[B,in]·[in,K·H]</c>) and the
/// second layers as one batched GEMM (<c>[K,B,H]·[K,H,out]</c>); BatchNorms are already folded.
/// A parallel bond passes several sets, each fed by its own input (<c>x0</c>, <c>x1</c>, …).
/// </summary>
internal static class MixtureGraphBuilder
{
    private const int FloatType = 1;
    private const int Int64Type = 7;
    public const string OutputName = "mixture";

    public static string InputName(int set) => $"x{set}";

    public static byte[] Build(IReadOnlyList<IReadOnlyList<ProjectorWeights>> sets)
    {
        if (sets.Count == 0 || sets.Any(s => s.Count == 0)) throw new ArgumentException("a mixture needs at least one projector in every set");
        var outDim = sets[0][0].OutputDimension;
        var totalProjectors = sets.Sum(s => s.Count);
        var graph = new ProtoWriter();
        var setSums = new List<string>();
        graph.String(2, "freebind_mixture");
        graph.Message(5, FloatTensor("eps", [1], [1e-12f]));
        graph.Message(5, Int64Tensor("axis0", [1], [0]));
        for (var s = 0; s < sets.Count; s++)
        {
            var set = sets[s];
            int k = set.Count, inDim = set[0].InputDimension, hidden = set[0].HiddenDimension;
            if (set.Any(p => p.InputDimension != inDim || p.HiddenDimension != hidden || p.OutputDimension != outDim))
                throw new ArgumentException("projectors of one set must share their dimensions, and all sets their output dimension");
            var wide = new float[inDim * k * hidden];
            var wideBias = new float[k * hidden];
            var second = new float[k * hidden * outDim];
            var secondBias = new float[k * outDim];
            for (var p = 0; p < k; p++)
            {
                var w = set[p];
                for (var i = 0; i < inDim; i++)
                    Array.Copy(w.W1, i * hidden, wide, i * k * hidden + p * hidden, hidden);
                Array.Copy(w.B1, 0, wideBias, p * hidden, hidden);
                Array.Copy(w.W2, 0, second, p * hidden * outDim, hidden * outDim);
                Array.Copy(w.B2, 0, secondBias, p * outDim, outDim);
            }
            var x = InputName(s);
            var p_ = $"s{s}_";
            graph.Message(5, FloatTensor(p_ + "w1", [inDim, k * hidden], wide));
            graph.Message(5, FloatTensor(p_ + "b1", [k * hidden], wideBias));
            graph.Message(5, FloatTensor(p_ + "w2", [k, hidden, outDim], second));
            graph.Message(5, FloatTensor(p_ + "b2", [k, 1, outDim], secondBias));
            graph.Message(5, Int64Tensor(p_ + "shape", [3], [0, k, hidden]));
            graph.Message(1, Node("MatMul", [x, p_ + "w1"], [p_ + "h"]));
            graph.Message(1, Node("Add", [p_ + "h", p_ + "b1"], [p_ + "hb"]));
            graph.Message(1, Node("Relu", [p_ + "hb"], [p_ + "hr"]));
            graph.Message(1, Node("Reshape", [p_ + "hr", p_ + "shape"], [p_ + "h3"]));
            graph.Message(1, Node("Transpose", [p_ + "h3"], [p_ + "ht"], Ints("perm", [1, 0, 2])));
            graph.Message(1, Node("MatMul", [p_ + "ht", p_ + "w2"], [p_ + "y"]));
            graph.Message(1, Node("Add", [p_ + "y", p_ + "b2"], [p_ + "yb"]));
            Normalize(graph, p_ + "yb", p_ + "yn", axis: 2);
            graph.Message(1, Node("ReduceSum", [p_ + "yn", "axis0"], [p_ + "sum"], Int("keepdims", 0)));
            graph.Message(11, ValueInfo(x, [-1, inDim]));
            setSums.Add(p_ + "sum");
        }
        graph.Message(5, FloatTensor("inv_k", [1], [1f / totalProjectors]));
        graph.Message(1, Node("Sum", setSums, ["total"]));
        graph.Message(1, Node("Mul", ["total", "inv_k"], ["mean"]));
        Normalize(graph, "mean", OutputName, axis: 1);
        graph.Message(12, ValueInfo(OutputName, [-1, outDim]));

        var model = new ProtoWriter();
        model.Varint(1, 8); // IR version 8 (opset 17 era)
        model.String(2, "freebind");
        model.Message(8, new ProtoWriter().String(1, "").Varint(2, 17));
        model.Message(7, graph);
        return model.ToArray();
    }

    // n(x) = x / max(|x|2, 1e-12) along one axis, as F.normalize does.
    private static void Normalize(ProtoWriter graph, string input, string output, int axis)
    {
        graph.Message(1, Node("ReduceL2", [input], [input + "_l2"], Ints("axes", [axis]), Int("keepdims", 1)));
        graph.Message(1, Node("Max", [input + "_l2", "eps"], [input + "_den"]));
        graph.Message(1, Node("Div", [input, input + "_den"], [output]));
    }

    private static ProtoWriter Node(string op, IEnumerable<string> inputs, IEnumerable<string> outputs, params ProtoWriter[] attributes)
    {
        var node = new ProtoWriter();
        foreach (var i in inputs) node.String(1, i);
        foreach (var o in outputs) node.String(2, o);
        node.String(4, op);
        foreach (var a in attributes) node.Message(5, a);
        return node;
    }

    private static ProtoWriter Ints(string name, long[] values)
    {
        var a = new ProtoWriter().String(1, name);
        foreach (var v in values) a.Varint(8, v);
        return a.Varint(20, 7);
    }

    private static ProtoWriter Int(string name, long value) => new ProtoWriter().String(1, name).Varint(3, value).Varint(20, 2);

    private static ProtoWriter FloatTensor(string name, long[] dims, float[] data)
    {
        var t = new ProtoWriter();
        foreach (var d in dims) t.Varint(1, d);
        return t.Varint(2, FloatType).String(8, name).Bytes(9, MemoryMarshal.AsBytes(data.AsSpan()));
    }

    private static ProtoWriter Int64Tensor(string name, long[] dims, long[] data)
    {
        var t = new ProtoWriter();
        foreach (var d in dims) t.Varint(1, d);
        return t.Varint(2, Int64Type).String(8, name).Bytes(9, MemoryMarshal.AsBytes(data.AsSpan()));
    }

    private static ProtoWriter ValueInfo(string name, long[] dims)
    {
        var shape = new ProtoWriter();
        foreach (var d in dims)
            shape.Message(1, d < 0 ? new ProtoWriter().String(2, "batch") : new ProtoWriter().Varint(1, d));
        var tensorType = new ProtoWriter().Varint(1, FloatType).Message(2, shape);
        return new ProtoWriter().String(1, name).Message(2, new ProtoWriter().Message(1, tensorType));
    }
}
