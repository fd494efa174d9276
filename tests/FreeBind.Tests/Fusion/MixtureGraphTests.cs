using FreeBind.Encoding.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace FreeBind.Tests.Fusion;

/// <summary>
/// The compiled mixture graph <c>n(mean_k P_k(x))</c>: what it computes, and what building it costs
/// in memory. A space's mixtures carry hundreds of MB of weights; every transient copy made while
/// building the graph lands on the large-object heap, which the GC hands back to the system late, so
/// a worker (or the test host, with several at once) kept a multiple of its weights resident.
/// </summary>
public sealed class MixtureGraphTests
{
    private static ProjectorWeights Random(Random rng, int input, int hidden, int output)
    {
        float[] Values(int n) => [.. Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
        return new ProjectorWeights
        {
            InputDimension = input,
            HiddenDimension = hidden,
            OutputDimension = output,
            W1 = Values(input * hidden),
            B1 = Values(hidden),
            W2 = Values(hidden * output),
            B2 = Values(output),
        };
    }

    [Fact]
    public void The_graph_computes_the_normalised_mean_of_the_normalised_projections()
    {
        var rng = new Random(7);
        var projectors = new[] { Random(rng, 3, 5, 4), Random(rng, 3, 5, 4) };
        float[] x = [0.3f, -1.2f, 0.8f];

        using var session = new InferenceSession(MixtureGraphBuilder.Build([projectors]));
        using var input = OrtValue.CreateTensorValueFromMemory(x, [1, 3]);
        using var outputs = session.Run(new RunOptions(), [MixtureGraphBuilder.InputName(0)], [input], [MixtureGraphBuilder.OutputName]);
        var actual = outputs[0].GetTensorDataAsSpan<float>().ToArray();

        var mean = new double[4];
        foreach (var p in projectors)
        {
            var h = Enumerable.Range(0, p.HiddenDimension)
                .Select(j => Math.Max(0, p.B1[j] + Enumerable.Range(0, 3).Sum(i => (double)x[i] * p.W1[i * p.HiddenDimension + j]))).ToArray();
            var y = Enumerable.Range(0, 4).Select(o => p.B2[o] + Enumerable.Range(0, p.HiddenDimension).Sum(j => h[j] * p.W2[j * 4 + o])).ToArray();
            var norm = Math.Sqrt(y.Sum(v => v * v));
            for (var o = 0; o < 4; o++) mean[o] += y[o] / norm / projectors.Length;
        }
        var total = Math.Sqrt(mean.Sum(v => v * v));
        for (var o = 0; o < 4; o++) Assert.Equal(mean[o] / total, actual[o], 5);
    }

    /// <summary>
    /// The graph is written once into a buffer sized for it, then copied once into the model array
    /// ONNX Runtime reads: about twice the model's size. Growing streams and a copy per nesting level
    /// allocated about eight times (1.35 GB for imagebind++'s 168 MB of projectors).
    /// </summary>
    [Fact]
    public void Building_a_mixture_allocates_about_twice_its_size()
    {
        var rng = new Random(11);
        IReadOnlyList<ProjectorWeights>[] sets = [[Random(rng, 256, 2048, 512), Random(rng, 256, 2048, 512)], [Random(rng, 384, 2048, 512)]];
        var before = GC.GetAllocatedBytesForCurrentThread();
        var model = MixtureGraphBuilder.Build(sets);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        var weights = sets.Sum(s => s.Sum(p => (long)(p.W1.Length + p.B1.Length + p.W2.Length + p.B2.Length) * sizeof(float)));
        Assert.InRange(model.Length, weights, weights + 64 * 1024);
        Assert.True(allocated <= 2.2 * model.Length, $"building a {model.Length >> 20} MB mixture allocated {allocated >> 20} MB");
    }

    /// <summary>
    /// A projector file is parsed from a memory mapping: its weights land on the managed heap once,
    /// as the parsed constants. Reading the file into an array first doubled that, for every file.
    /// </summary>
    [Fact]
    public void Loading_a_projector_file_copies_its_weights_once()
    {
        var file = Directory.EnumerateFiles(Path.Combine(EngineFixture.Models, "IB_PP_G_Proj"), "*.onnx", SearchOption.AllDirectories).Order(StringComparer.Ordinal).First();
        OnnxGraph.Load(file); // first-use allocations (JIT, statics) out of the measurement
        var before = GC.GetAllocatedBytesForCurrentThread();
        var graph = OnnxGraph.Load(file);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        var size = new FileInfo(file).Length;
        Assert.InRange(graph.Constants.Values.Sum(c => (long)c.Floats.Length * sizeof(float)), size * 9 / 10, size);
        Assert.True(allocated <= 1.2 * size, $"loading a {size >> 20} MB projector allocated {allocated >> 20} MB");
    }
}
