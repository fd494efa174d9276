using System.Runtime.InteropServices;

namespace FreeBind.Encoding.Onnx;

/// <summary>
/// Compiles a projector mixture <c>M(x) = n(mean_k P_k(x))</c> into one ONNX graph: one session
/// and one <c>Run</c> for all projectors, BatchNorms already folded, normalisations in the graph.
/// Each projector stays a pair of 2-D <c>Gemm</c>s with constant weights, which ONNX Runtime
/// pre-packs once; measured against one wide first-layer GEMM (<c>[B,in]·[in,K·2048]</c>) and a
/// batched second layer, this layout was faster at batch 64 and 256 (docs/benchmarks.md): the
/// wide layer's output leaves the cache and 3-D weights are re-packed on every call.
/// A parallel bond passes several sets, each fed by its own input (<c>x0</c>, <c>x1</c>, …).
/// </summary>
internal static class MixtureGraphBuilder
{
    private const int FloatType = 1;
    public const string OutputName = "mixture";

    public static string InputName(int set) => $"x{set}";

    public static byte[] Build(IReadOnlyList<IReadOnlyList<ProjectorWeights>> sets)
    {
        if (sets.Count == 0 || sets.Any(s => s.Count == 0)) throw new ArgumentException("a mixture needs at least one projector in every set");
        var outDim = sets[0][0].OutputDimension;
        var totalProjectors = sets.Sum(s => s.Count);
        // The weights dominate the graph; the rest (names, nodes, shapes) is well under 4 KB a projector.
        var weightBytes = sets.Sum(s => s.Sum(p => (long)(p.W1.Length + p.B1.Length + p.W2.Length + p.B2.Length) * sizeof(float)));
        var graph = new ProtoWriter((int)Math.Min(int.MaxValue, weightBytes + 4096L * (totalProjectors + 1)));
        var outputs = new List<string>();
        graph.String(2, "freebind_mixture");
        FloatTensor(graph, "eps", [1], [1e-12f]);
        for (var s = 0; s < sets.Count; s++)
        {
            var set = sets[s];
            var inDim = set[0].InputDimension;
            if (set.Any(p => p.InputDimension != inDim || p.OutputDimension != outDim))
                throw new ArgumentException("projectors of one set must share their input dimension, and all sets their output dimension");
            var x = InputName(s);
            for (var k = 0; k < set.Count; k++)
            {
                var w = set[k];
                var p = $"s{s}p{k}_";
                FloatTensor(graph, p + "w1", [inDim, w.HiddenDimension], w.W1);
                FloatTensor(graph, p + "b1", [w.HiddenDimension], w.B1);
                FloatTensor(graph, p + "w2", [w.HiddenDimension, outDim], w.W2);
                FloatTensor(graph, p + "b2", [outDim], w.B2);
                graph.Message(1, Node("Gemm", [x, p + "w1", p + "b1"], [p + "h"]));
                graph.Message(1, Node("Relu", [p + "h"], [p + "hr"]));
                graph.Message(1, Node("Gemm", [p + "hr", p + "w2", p + "b2"], [p + "y"]));
                Normalize(graph, p + "y", p + "yn");
                outputs.Add(p + "yn");
            }
            graph.Message(11, ValueInfo(x, [-1, inDim]));
        }
        FloatTensor(graph, "inv_k", [1], [1f / totalProjectors]);
        graph.Message(1, Node("Sum", outputs, ["total"]));
        graph.Message(1, Node("Mul", ["total", "inv_k"], ["mean"]));
        Normalize(graph, "mean", OutputName);
        graph.Message(12, ValueInfo(OutputName, [-1, outDim]));

        var model = new ProtoWriter();
        model.Varint(1, 8); // IR version 8 (opset 17 era)
        model.String(2, "freebind");
        model.Message(8, new ProtoWriter().String(1, "").Varint(2, 17));
        return model.ToArray(7, graph);
    }

    // n(x) = x / max(|x|2, 1e-12) along one axis, as F.normalize does.
    private static void Normalize(ProtoWriter graph, string input, string output)
    {
        graph.Message(1, Node("ReduceL2", [input], [input + "_l2"], Ints("axes", [1]), Int("keepdims", 1)));
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

    // A graph initializer (GraphProto field 5), written straight into the graph.
    private static void FloatTensor(ProtoWriter graph, string name, long[] dims, float[] data) =>
        graph.FloatTensor(5, name, dims, FloatType, MemoryMarshal.AsBytes(data.AsSpan()));

    private static ProtoWriter ValueInfo(string name, long[] dims)
    {
        var shape = new ProtoWriter();
        foreach (var d in dims)
            shape.Message(1, d < 0 ? new ProtoWriter().String(2, "batch") : new ProtoWriter().Varint(1, d));
        var tensorType = new ProtoWriter().Varint(1, FloatType).Message(2, shape);
        return new ProtoWriter().String(1, name).Message(2, new ProtoWriter().Message(1, tensorType));
    }
}
