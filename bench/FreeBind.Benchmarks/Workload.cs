using System.Numerics.Tensors;
using FreeBind.Encoding.Onnx;

namespace FreeBind.Benchmarks;

/// <summary>
/// The ImageBind++ audio mixture: CLAP-General's 7 projectors fed the clap-general atom and
/// CLAP-Music's 7 fed the clap-music atom (512 → 2048 → 1024 each), <c>M = n(mean of 14 n(P_k))</c>.
/// </summary>
internal sealed class Workload
{
    public static readonly string[] Modes = ["mix", "A", "T", "V", "AT", "AV", "TV"];
    public static readonly string[] Sets = ["IB_PP_G_Proj", "IB_PP_M_Proj"];
    public const int InputDim = 512;
    public const int HiddenDim = 2048;
    public const int OutputDim = 1024;
    public const int Projectors = 14;

    /// <summary>Multiply-adds of the two linear layers, ×2 flops, ×14 projectors (bias, ReLU and normalisation are O(out), ignored).</summary>
    public const double FlopsPerItem = Projectors * 2.0 * (InputDim * HiddenDim + HiddenDim * OutputDim);

    private Workload(string modelsDir, int maxBatch)
    {
        Files = [.. Sets.Select(s => (IReadOnlyList<string>)[.. Modes.Select(m => Path.Combine(modelsDir, s, m, "best.onnx"))])];
        foreach (var f in Files.SelectMany(f => f))
            if (!File.Exists(f)) throw new FileNotFoundException($"projector file missing: {f} (generate it with tools/reference/generate_models.py --out DIR)", f);
        Weights = [.. Files.Select(set => (IReadOnlyList<ProjectorWeights>)[.. set.Select(p => ProjectorWeights.FromGraph(OnnxGraph.Load(p), p))])];
        MaxBatch = maxBatch;
        var random = new Random(20240521);
        Atoms = [RandomUnitRows(random, maxBatch), RandomUnitRows(random, maxBatch)];
    }

    /// <summary>Projector files per set (G then M), upstream layout <c>SET/MODE/best.onnx</c>.</summary>
    public IReadOnlyList<IReadOnlyList<string>> Files { get; }

    /// <summary>Batch-norm-folded weights per set, as the fusion engine reads them.</summary>
    public IReadOnlyList<IReadOnlyList<ProjectorWeights>> Weights { get; }

    public int MaxBatch { get; }

    /// <summary>The clap-general and clap-music atoms, already L2-normalised, <c>[MaxBatch, 512]</c> each.</summary>
    public float[][] Atoms { get; }

    public static Workload Load(string modelsDir, int maxBatch) => new(modelsDir, maxBatch);

    private static float[] RandomUnitRows(Random random, int rows)
    {
        var x = new float[rows * InputDim];
        for (var i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
        for (var r = 0; r < rows; r++) NormalizeRow(x.AsSpan(r * InputDim, InputDim));
        return x;
    }

    public static void NormalizeRow(Span<float> row) =>
        TensorPrimitives.Divide(row, MathF.Max(TensorPrimitives.Norm(row), 1e-12f), row);

    /// <summary>Writes both atoms as raw float32 <c>[2, MaxBatch, 512]</c> for the PyTorch subprocess.</summary>
    public void WriteAtoms(string path)
    {
        using var file = File.Create(path);
        foreach (var a in Atoms) file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()));
    }

    public static float MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) return float.PositiveInfinity;
        var d = 0f;
        for (var i = 0; i < a.Length; i++) d = MathF.Max(d, MathF.Abs(a[i] - b[i]));
        return d;
    }
}
