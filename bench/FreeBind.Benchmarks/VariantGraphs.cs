using System.Runtime.InteropServices;
using FreeBind.Encoding.Onnx;

namespace FreeBind.Benchmarks;

/// <summary>
/// Alternative mixture graphs, built here only to find out what the engine's graph would gain from
/// a different shape. Same maths as <see cref="MixtureGraphBuilder"/> (checked numerically by the
/// investigation against the engine's output), different ops.
/// </summary>
internal static class VariantGraphs
{
    /// <summary>
    /// First layers of a set as one wide <c>Gemm</c> (bias fused), ReLU, <c>Split</c> into the K
    /// hidden blocks, then one 2-D <c>Gemm</c> per projector — constant 2-D weights ONNX Runtime can
    /// pre-pack — instead of Reshape → Transpose → batched MatMul.
    /// </summary>
    public static byte[] WideGemmThenSplit(IReadOnlyList<IReadOnlyList<ProjectorWeights>> sets) => Build(sets);

    /// <summary>
    /// The engine's earlier layout, kept so that its comparison is reproduced in every run: per set,
    /// one wide first <c>Gemm</c> [B,in]·[in,K·H], ReLU, Reshape to [B,K,H], Transpose to [K,B,H],
    /// one batched 3-D <c>MatMul</c> with the K second-layer weights [K,H,out], bias, normalisation
    /// per projector, then the sum over K and sets, the mean and the final normalisation.
    /// </summary>
    public static byte[] WideGemmThenBatchedMatMul(IReadOnlyList<IReadOnlyList<ProjectorWeights>> sets)
    {
        var g = new Graph();
        var outDim = sets[0][0].OutputDimension;
        var total = sets.Sum(s => s.Count);
        var sums = new List<string>();
        g.Tensor("eps", [1], [1e-12f]);
        g.TensorInt64("axis0", [1], [0]);
        for (var s = 0; s < sets.Count; s++)
        {
            var set = sets[s];
            int k = set.Count, inDim = set[0].InputDimension, hidden = set[0].HiddenDimension;
            var x = MixtureGraphBuilder.InputName(s);
            g.Input(x, inDim);
            var wide = new float[inDim * k * hidden];
            var wideBias = new float[k * hidden];
            var second = new float[k * hidden * outDim];
            var secondBias = new float[k * outDim];
            for (var p = 0; p < k; p++)
            {
                for (var i = 0; i < inDim; i++) Array.Copy(set[p].W1, i * hidden, wide, i * k * hidden + p * hidden, hidden);
                Array.Copy(set[p].B1, 0, wideBias, p * hidden, hidden);
                Array.Copy(set[p].W2, 0, second, p * hidden * outDim, hidden * outDim);
                Array.Copy(set[p].B2, 0, secondBias, p * outDim, outDim);
            }
            g.Tensor($"s{s}_w1", [inDim, k * hidden], wide);
            g.Tensor($"s{s}_b1", [k * hidden], wideBias);
            g.Tensor($"s{s}_w2", [k, hidden, outDim], second);
            g.Tensor($"s{s}_b2", [k, 1, outDim], secondBias);
            g.TensorInt64($"s{s}_shape", [3], [0, k, hidden]);
            g.Node("Gemm", [x, $"s{s}_w1", $"s{s}_b1"], [$"s{s}_h"]);
            g.Node("Relu", [$"s{s}_h"], [$"s{s}_hr"]);
            g.Node("Reshape", [$"s{s}_hr", $"s{s}_shape"], [$"s{s}_h3"]);
            g.Node("Transpose", [$"s{s}_h3"], [$"s{s}_ht"], Graph.Ints("perm", [1, 0, 2]));
            g.Node("MatMul", [$"s{s}_ht", $"s{s}_w2"], [$"s{s}_y0"]);
            g.Node("Add", [$"s{s}_y0", $"s{s}_b2"], [$"s{s}_y"]);
            g.Node("ReduceL2", [$"s{s}_y"], [$"s{s}_l2"], Graph.Ints("axes", [2]), Graph.Int("keepdims", 1));
            g.Node("Max", [$"s{s}_l2", "eps"], [$"s{s}_den"]);
            g.Node("Div", [$"s{s}_y", $"s{s}_den"], [$"s{s}_yn"]);
            g.Node("ReduceSum", [$"s{s}_yn", "axis0"], [$"s{s}_sum"], Graph.Int("keepdims", 0));
            sums.Add($"s{s}_sum");
        }
        g.Tensor("inv_k", [1], [1f / total]);
        g.Node("Sum", sums, ["total"]);
        g.Node("Mul", ["total", "inv_k"], ["mean"]);
        g.Normalize("mean", MixtureGraphBuilder.OutputName);
        g.Output(MixtureGraphBuilder.OutputName, outDim);
        return g.ToModel();
    }

    private static byte[] Build(IReadOnlyList<IReadOnlyList<ProjectorWeights>> sets)
    {
        var g = new Graph();
        var outDim = sets[0][0].OutputDimension;
        var total = sets.Sum(s => s.Count);
        var normalised = new List<string>();
        g.Tensor("eps", [1], [1e-12f]);
        for (var s = 0; s < sets.Count; s++)
        {
            var set = sets[s];
            int k = set.Count, inDim = set[0].InputDimension, hidden = set[0].HiddenDimension;
            var x = MixtureGraphBuilder.InputName(s);
            g.Input(x, inDim);
            var hiddens = new List<string>();
            var wide = new float[inDim * k * hidden];
            var wideBias = new float[k * hidden];
            for (var p = 0; p < k; p++)
            {
                for (var i = 0; i < inDim; i++) Array.Copy(set[p].W1, i * hidden, wide, i * k * hidden + p * hidden, hidden);
                Array.Copy(set[p].B1, 0, wideBias, p * hidden, hidden);
            }
            g.Tensor($"s{s}_w1", [inDim, k * hidden], wide);
            g.Tensor($"s{s}_b1", [k * hidden], wideBias);
            g.Node("Gemm", [x, $"s{s}_w1", $"s{s}_b1"], [$"s{s}_h"]);
            g.Node("Relu", [$"s{s}_h"], [$"s{s}_hr"]);
            hiddens.AddRange(Enumerable.Range(0, k).Select(p => $"s{s}_h{p}"));
            g.Node("Split", [$"s{s}_hr"], hiddens, Graph.Int("axis", 1));
            for (var p = 0; p < k; p++)
            {
                var y = $"s{s}_p{p}_y";
                g.Tensor($"s{s}_p{p}_w2", [hidden, outDim], set[p].W2);
                g.Tensor($"s{s}_p{p}_b2", [outDim], set[p].B2);
                g.Node("Gemm", [hiddens[p], $"s{s}_p{p}_w2", $"s{s}_p{p}_b2"], [y]);
                g.Normalize(y, y + "n");
                normalised.Add(y + "n");
            }
        }
        g.Tensor("inv_k", [1], [1f / total]);
        g.Node("Sum", normalised, ["total"]);
        g.Node("Mul", ["total", "inv_k"], ["mean"]);
        g.Normalize("mean", MixtureGraphBuilder.OutputName);
        g.Output(MixtureGraphBuilder.OutputName, outDim);
        return g.ToModel();
    }

    /// <summary>A minimal ONNX GraphProto writer (field numbers from onnx.proto3).</summary>
    private sealed class Graph
    {
        private readonly ProtoWriter _graph = new ProtoWriter().String(2, "freebind_mixture_variant");

        public void Tensor(string name, long[] dims, float[] data)
        {
            var t = new ProtoWriter();
            foreach (var d in dims) t.Varint(1, d);
            _graph.Message(5, t.Varint(2, 1).String(8, name).Bytes(9, MemoryMarshal.AsBytes(data.AsSpan())));
        }

        public void TensorInt64(string name, long[] dims, long[] data)
        {
            var t = new ProtoWriter();
            foreach (var d in dims) t.Varint(1, d);
            _graph.Message(5, t.Varint(2, 7).String(8, name).Bytes(9, MemoryMarshal.AsBytes(data.AsSpan())));
        }

        public void Node(string op, IEnumerable<string> inputs, IEnumerable<string> outputs, params ProtoWriter[] attributes)
        {
            var n = new ProtoWriter();
            foreach (var i in inputs) n.String(1, i);
            foreach (var o in outputs) n.String(2, o);
            n.String(4, op);
            foreach (var a in attributes) n.Message(5, a);
            _graph.Message(1, n);
        }

        public static ProtoWriter Int(string name, long value) => new ProtoWriter().String(1, name).Varint(3, value).Varint(20, 2);

        public static ProtoWriter Ints(string name, long[] values)
        {
            var a = new ProtoWriter().String(1, name);
            foreach (var v in values) a.Varint(8, v);
            return a.Varint(20, 7);
        }

        // n(x) along the last axis of a [B, D] tensor, as the engine writes it.
        public void Normalize(string input, string output)
        {
            Node("ReduceL2", [input], [input + "_l2"], Ints("axes", [1]), Int("keepdims", 1));
            Node("Max", [input + "_l2", "eps"], [input + "_den"]);
            Node("Div", [input, input + "_den"], [output]);
        }

        public void Input(string name, long width) => _graph.Message(11, ValueInfo(name, width));

        public void Output(string name, long width) => _graph.Message(12, ValueInfo(name, width));

        private static ProtoWriter ValueInfo(string name, long width)
        {
            var shape = new ProtoWriter()
                .Message(1, new ProtoWriter().String(2, "batch"))
                .Message(1, new ProtoWriter().Varint(1, width));
            var tensorType = new ProtoWriter().Varint(1, 1).Message(2, shape);
            return new ProtoWriter().String(1, name).Message(2, new ProtoWriter().Message(1, tensorType));
        }

        public byte[] ToModel()
        {
            var model = new ProtoWriter();
            model.Varint(1, 8);
            model.String(2, "freebind-bench");
            model.Message(8, new ProtoWriter().String(1, "").Varint(2, 17));
            model.Message(7, _graph);
            return model.ToArray();
        }
    }
}
