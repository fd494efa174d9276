namespace FreeBind.Encoding.Onnx;

/// <summary>
/// One upstream projector (Linear → BN → ReLU → Linear → BN → L2-normalise) with both BatchNorms
/// folded into the Linear before them. Weights are stored input-major (<c>W[in, out]</c>) so
/// <c>y = x·W + b</c>.
/// </summary>
internal sealed class ProjectorWeights
{
    public required int InputDimension { get; init; }
    public required int HiddenDimension { get; init; }
    public required int OutputDimension { get; init; }
    public required float[] W1 { get; init; }
    public required float[] B1 { get; init; }
    public required float[] W2 { get; init; }
    public required float[] B2 { get; init; }

    /// <summary>Ops allowed after the second affine layer: the exported form of <c>F.normalize</c>.</summary>
    private static readonly HashSet<string> NormalizeTailOps = new(StringComparer.Ordinal)
    {
        "ReduceL2", "Clip", "Max", "Expand", "Div", "Shape", "Constant", "ConstantOfShape", "Unsqueeze", "Gather",
        "Reshape", "Sqrt", "ReduceSumSquare", "Pow", "ReduceSum", "Mul", "Identity", "Cast", "LpNormalization",
    };

    /// <summary>
    /// Reads a projector graph. The structure is matched by op type (Gemm or MatMul+Add, optional
    /// BatchNormalization, Relu, again, then the normalisation tail); the caller verifies the
    /// extracted maths numerically against ONNX Runtime running the same file.
    /// </summary>
    public static ProjectorWeights FromGraph(OnnxGraph graph, string path)
    {
        var input = graph.RealInputs.SingleOrDefault()
            ?? throw new InvalidDataException($"projector '{path}' must have exactly one input");
        var current = input.Name;
        var affines = new List<(float[] W, float[] B, int In, int Out)>();
        var sawRelu = false;
        var tail = false;
        foreach (var node in graph.Nodes)
        {
            if (node.OpType == "Constant") continue;
            if (tail)
            {
                if (!NormalizeTailOps.Contains(node.OpType))
                    throw new InvalidDataException($"projector '{path}': unexpected op {node.OpType} after the last layer (only an L2 normalisation may follow)");
                continue;
            }
            if (!node.Inputs.Contains(current))
                throw new InvalidDataException($"projector '{path}': node {node.OpType} '{node.Name}' does not continue the layer chain");
            switch (node.OpType)
            {
                case "Gemm":
                    affines.Add(ReadGemm(graph, node, path));
                    break;
                case "MatMul":
                    affines.Add(ReadMatMul(graph, node, path));
                    break;
                case "Add" when affines.Count > 0:
                    AddBias(graph, node, affines[^1].B, path);
                    break;
                case "BatchNormalization" when affines.Count > 0:
                    FoldBatchNorm(graph, node, affines[^1], path);
                    break;
                case "Relu" when affines.Count == 1 && !sawRelu:
                    sawRelu = true;
                    break;
                default:
                    throw new InvalidDataException($"projector '{path}': unexpected op {node.OpType} in the layer chain (expected Linear → BatchNorm → ReLU → Linear → BatchNorm → normalise)");
            }
            current = node.Outputs[0];
            if (affines.Count == 2 && node.OpType is "BatchNormalization") tail = true;
        }
        if (affines.Count != 2 || !sawRelu)
            throw new InvalidDataException($"projector '{path}': expected two linear layers with a ReLU between them, found {affines.Count} linear layer(s)");
        var (w1, b1, inDim, hidden) = affines[0];
        var (w2, b2, hidden2, outDim) = affines[1];
        if (hidden != hidden2) throw new InvalidDataException($"projector '{path}': layer widths do not chain ({hidden} vs {hidden2})");
        return new ProjectorWeights { InputDimension = inDim, HiddenDimension = hidden, OutputDimension = outDim, W1 = w1, B1 = b1, W2 = w2, B2 = b2 };
    }

    private static OnnxTensor Const(OnnxGraph graph, string name, string path) =>
        graph.Constants.TryGetValue(name, out var t) && t.DataType == OnnxTensor.Float
            ? t
            : throw new InvalidDataException($"projector '{path}': '{name}' is not a float constant");

    private static (float[] W, float[] B, int In, int Out) ReadGemm(OnnxGraph graph, OnnxNode node, string path)
    {
        if (node.Int("transA", 0) != 0) throw new InvalidDataException($"projector '{path}': Gemm with transA is not supported");
        var b = Const(graph, node.Inputs[1], path);
        var alpha = node.Float("alpha", 1f);
        var beta = node.Float("beta", 1f);
        var transB = node.Int("transB", 0) != 0;
        int rows = (int)b.Dims[0], cols = (int)b.Dims[1];
        var (inDim, outDim) = transB ? (cols, rows) : (rows, cols);
        var w = new float[inDim * outDim];
        for (var i = 0; i < inDim; i++)
            for (var o = 0; o < outDim; o++)
                w[i * outDim + o] = alpha * (transB ? b.Floats[o * inDim + i] : b.Floats[i * outDim + o]);
        var bias = new float[outDim];
        if (node.Inputs.Count > 2 && node.Inputs[2].Length > 0)
        {
            var c = Const(graph, node.Inputs[2], path);
            for (var o = 0; o < outDim; o++) bias[o] = beta * c.Floats[c.Floats.Length == 1 ? 0 : o];
        }
        return (w, bias, inDim, outDim);
    }

    private static (float[] W, float[] B, int In, int Out) ReadMatMul(OnnxGraph graph, OnnxNode node, string path)
    {
        var w = Const(graph, node.Inputs[1], path);
        if (w.Dims.Length != 2) throw new InvalidDataException($"projector '{path}': MatMul weight must be 2-D");
        return ((float[])w.Floats.Clone(), new float[w.Dims[1]], (int)w.Dims[0], (int)w.Dims[1]);
    }

    private static void AddBias(OnnxGraph graph, OnnxNode node, float[] bias, string path)
    {
        var other = node.Inputs.First(n => graph.Constants.ContainsKey(n));
        var c = Const(graph, other, path);
        for (var o = 0; o < bias.Length; o++) bias[o] += c.Floats[c.Floats.Length == 1 ? 0 : o];
    }

    private static void FoldBatchNorm(OnnxGraph graph, OnnxNode node, (float[] W, float[] B, int In, int Out) affine, string path)
    {
        var scale = Const(graph, node.Inputs[1], path).Floats;
        var shift = Const(graph, node.Inputs[2], path).Floats;
        var mean = Const(graph, node.Inputs[3], path).Floats;
        var variance = Const(graph, node.Inputs[4], path).Floats;
        var eps = node.Float("epsilon", 1e-5f);
        var (w, b, inDim, outDim) = affine;
        if (scale.Length != outDim) throw new InvalidDataException($"projector '{path}': BatchNorm width {scale.Length} does not match its layer ({outDim})");
        // Fold in double precision: (x·W + b − μ)·γ/√(σ²+ε) + β.
        for (var o = 0; o < outDim; o++)
        {
            var k = scale[o] / Math.Sqrt((double)variance[o] + eps);
            for (var i = 0; i < inDim; i++) w[i * outDim + o] = (float)(w[i * outDim + o] * k);
            b[o] = (float)((b[o] - (double)mean[o]) * k + shift[o]);
        }
    }
}
