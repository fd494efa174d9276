using System.Text.Json;
using FreeBind.Encoding.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace FreeBind.Benchmarks;

/// <summary>Time per op type in one ORT profile, milliseconds per Run.</summary>
internal sealed record OpProfile(string Variant, int Batch, IReadOnlyList<(string Op, int Nodes, double MsPerRun)> Ops);

/// <summary>
/// Experiments on the mixture's ORT configuration and graph shape, timed round-robin in the same
/// run: thread count, spinning, graph optimisation level, memory arena, and alternative graphs;
/// plus a per-op profile showing what ORT made of the graph (fusions, transposes) and where the
/// time goes.
/// </summary>
internal sealed class Investigation(Workload workload) : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    /// <summary>A session over a graph given as bytes, fed the workload's atoms directly (no item copies).</summary>
    private sealed class GraphRunner : IDisposable
    {
        private readonly InferenceSession _session;
        private readonly Workload _workload;
        private readonly RunOptions _run = new();
        private readonly string[] _inputs;

        public GraphRunner(byte[] model, SessionOptions options, Workload workload)
        {
            _session = new InferenceSession(model, options);
            _workload = workload;
            _inputs = [.. _session.InputMetadata.Keys];
        }

        public float[] Run(int batch)
        {
            var d = Workload.InputDim;
            var values = _inputs.Select(name => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
                _workload.Atoms[name == MixtureGraphBuilder.InputName(0) ? 0 : 1].AsMemory(0, batch * d), [batch, d])).ToList();
            try
            {
                using var outputs = _session.Run(_run, _inputs, values, [MixtureGraphBuilder.OutputName]);
                return outputs[0].GetTensorDataAsSpan<float>().ToArray();
            }
            finally
            {
                foreach (var v in values) v.Dispose();
            }
        }

        public string EndProfiling() => _session.EndProfiling();

        public void Dispose()
        {
            _session.Dispose();
            _run.Dispose();
        }
    }

    public static SessionOptions Options(GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL, int threads = 0,
        bool spinning = true, bool arena = true, string? profilePrefix = null)
    {
        var so = new SessionOptions { GraphOptimizationLevel = level, EnableCpuMemArena = arena };
        if (threads > 0) so.IntraOpNumThreads = threads;
        if (!spinning) so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        if (profilePrefix is not null)
        {
            so.EnableProfiling = true;
            so.ProfileOutputPathPrefix = profilePrefix;
        }
        return so;
    }

    /// <summary>The experiment cases; each returns its output so it can be checked against the engine.</summary>
    public IReadOnlyList<(string Name, Func<int, float[]> Run)> Cases(byte[] engineGraph)
    {
        var cases = new List<(string, Func<int, float[]>)>();
        void Add(string name, byte[] graph, SessionOptions so)
        {
            var runner = new GraphRunner(graph, so, workload);
            so.Dispose();
            _owned.Add(runner);
            cases.Add((name, runner.Run));
        }
        Add("engine graph, ORT defaults (ENABLE_ALL, threads = cores, spinning)", engineGraph, Options());
        Add("engine graph, IntraOpNumThreads = 1", engineGraph, Options(threads: 1));
        Add("engine graph, spinning off", engineGraph, Options(spinning: false));
        Add("engine graph, memory arena off", engineGraph, Options(arena: false));
        Add("engine graph, ORT_DISABLE_ALL", engineGraph, Options(GraphOptimizationLevel.ORT_DISABLE_ALL));
        Add("variant: wide Gemm → Split → 14 × 2-D Gemm (no transpose)", VariantGraphs.WideGemmThenSplit(workload.Weights), Options());
        Add("variant: 14 separate Gemm → ReLU → Gemm chains (no wide GEMM)", VariantGraphs.SeparateChains(workload.Weights), Options());
        Add("earlier engine layout: wide Gemm → Reshape/Transpose → batched 3-D MatMul", VariantGraphs.WideGemmThenBatchedMatMul(workload.Weights), Options());
        var spinless = new ProjectorSessionsBaseline(workload, path =>
        {
            using var so = Options(spinning: false);
            return new InferenceSession(path, so);
        });
        _owned.Add(spinless);
        cases.Add(("baseline (b) with spinning off", spinless.Run));
        return cases;
    }

    /// <summary>Profiles a graph with ORT's profiler and sums kernel time per op type.</summary>
    public static OpProfile Profile(string variant, byte[] graph, Workload workload, int batch, int runs)
    {
        var dir = Directory.CreateTempSubdirectory("freebind-profile-");
        try
        {
            string file;
            using (var so = Options(profilePrefix: Path.Combine(dir.FullName, "ort")))
            using (var runner = new GraphRunner(graph, so, workload))
            {
                for (var i = 0; i < runs + 1; i++) runner.Run(batch);
                file = runner.EndProfiling();
            }
            using var json = JsonDocument.Parse(File.ReadAllText(file));
            var byOp = new Dictionary<string, (HashSet<string> Nodes, double Us)>();
            var seen = new HashSet<string>();
            foreach (var e in json.RootElement.EnumerateArray())
            {
                if (e.GetProperty("cat").GetString() != "Node") continue;
                var name = e.GetProperty("name").GetString() ?? "";
                if (!name.EndsWith("_kernel_time", StringComparison.Ordinal)) continue;
                if (seen.Add(name)) continue; // a node's first event is the warm-up run (allocation, pre-packing)
                var op = e.GetProperty("args").GetProperty("op_name").GetString() ?? "?";
                if (!byOp.TryGetValue(op, out var entry)) byOp[op] = entry = ([], 0);
                entry.Nodes.Add(name);
                byOp[op] = (entry.Nodes, entry.Us + e.GetProperty("dur").GetDouble());
            }
            return new OpProfile(variant, batch, [.. byOp.OrderByDescending(kv => kv.Value.Us)
                .Select(kv => (kv.Key, kv.Value.Nodes.Count, kv.Value.Us / 1000.0 / runs))]);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    public void Dispose()
    {
        foreach (var o in _owned) o.Dispose();
    }
}
