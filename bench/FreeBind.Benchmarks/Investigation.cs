using System.Text.Json;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Fusion;
using FreeBind.Encoding.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace FreeBind.Benchmarks;

/// <summary>Time per op type in one ORT profile, milliseconds per Run.</summary>
internal sealed record OpProfile(string Variant, int Batch, IReadOnlyList<(string Op, int Nodes, double MsPerRun)> Ops);

/// <summary>CPU a session's threads burn after one <c>Run</c> returned, the process otherwise idle.</summary>
internal sealed record SpinTail(string Session, double CpuMs, double[] Every);

/// <summary>
/// Experiments on what limits the mixture and what its speed depends on, each timed alone (the
/// process idle before each call) round-robin in the same run: the engine's row split, ONNX
/// Runtime's intra-op pool and its spinning, the memory arena, the micro-batcher's hand-off, graph
/// layouts; plus the CPU a pool burns spinning after a <c>Run</c> and a per-op profile.
/// </summary>
internal sealed class Investigation(Workload workload) : IDisposable
{
    private readonly List<IDisposable> _owned = [];
    private readonly List<IAsyncDisposable> _ownedAsync = [];

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

    /// <summary>
    /// Session options as <see cref="SessionFactory"/> builds them on the CPU (ORT_ENABLE_ALL; the
    /// intra-op pool at one thread per core unless <paramref name="threads"/> says otherwise), with one change each.
    /// </summary>
    public static SessionOptions Options(int threads = 0, bool spinning = true, bool stopSpinningAfterRun = false, bool arena = true, string? profilePrefix = null)
    {
        var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, EnableCpuMemArena = arena };
        if (threads > 0) so.IntraOpNumThreads = threads;
        if (!spinning) so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        if (stopSpinningAfterRun) so.AddSessionConfigEntry("session.force_spinning_stop", "1");
        if (profilePrefix is not null)
        {
            so.EnableProfiling = true;
            so.ProfileOutputPathPrefix = profilePrefix;
        }
        return so;
    }

    /// <summary>The experiment cases; each returns its output so it can be checked against the engine.</summary>
    public IReadOnlyList<(string Name, Func<int, float[]> Run)> Cases(byte[] engineGraph, int batch)
    {
        var cases = new List<(string, Func<int, float[]>)>();
        var options = new OnnxOptions { ExecutionProvider = "cpu", MaxBatch = batch, MaxWaitMs = 50 };
        CompiledMixture Mixture(string label, byte[] graph, int parallelism, bool arena = true)
        {
            using var so = Options(threads: 1, arena: arena);
            var mixture = new CompiledMixture(label, new InferenceSession(graph, so), parallelism, options);
            _ownedAsync.Add(mixture);
            return mixture;
        }
        Func<int, float[]> Rows(CompiledMixture mixture) => b =>
        {
            var output = new float[b * Workload.OutputDim];
            mixture.Run(workload.Atoms, b, output);
            return output;
        };
        void Graph(string name, byte[] graph, SessionOptions so)
        {
            var runner = new GraphRunner(graph, so, workload);
            so.Dispose();
            _owned.Add(runner);
            cases.Add((name, runner.Run));
        }
        var cores = Environment.ProcessorCount;
        var engine = Mixture("engine", engineGraph, cores);
        cases.Add(("engine: single-threaded session, rows split over the cores (= (a))", Rows(engine)));
        cases.Add(("engine session, one run per batch (rows not split)", Rows(Mixture("one run", engineGraph, 1))));
        Graph("earlier engine: ORT intra-op pool (threads = cores), spinning as ORT's defaults (= (a0))", engineGraph, Options());
        Graph("ORT intra-op pool, spinning off (session.intra_op.allow_spinning=0)", engineGraph, Options(spinning: false));
        Graph("ORT intra-op pool, spinning stopped after each Run (session.force_spinning_stop=1)", engineGraph, Options(stopSpinningAfterRun: true));
        cases.Add(("engine, items handed over one by one through the micro-batcher (max batch = batch)", b =>
        {
            var d = Workload.InputDim;
            var results = Task.WhenAll(Enumerable.Range(0, b).Select(i => engine.RunAsync(
                [workload.Atoms[0].AsSpan(i * d, d).ToArray(), workload.Atoms[1].AsSpan(i * d, d).ToArray()]))).GetAwaiter().GetResult();
            return [.. results.SelectMany(r => r)];
        }));
        cases.Add(("engine, memory arena off", Rows(Mixture("no arena", engineGraph, cores, arena: false))));
        cases.Add(("engine runner, layout: wide Gemm → Split → 14 × 2-D Gemm", Rows(Mixture("split", VariantGraphs.WideGemmThenSplit(workload.Weights), cores))));
        cases.Add(("engine runner, layout: wide Gemm → Reshape/Transpose → batched 3-D MatMul (the engine's first layout)", Rows(Mixture("batched", VariantGraphs.WideGemmThenBatchedMatMul(workload.Weights), cores))));
        return cases;
    }

    /// <summary>
    /// CPU the process burns in the second after one <c>Run</c> of a batch of 8 returned (median of 3):
    /// ONNX Runtime's intra-op workers keep spinning for work after a <c>Run</c> unless told not to.
    /// </summary>
    public static IReadOnlyList<SpinTail> SpinTails(byte[] engineGraph, Workload workload)
    {
        var tails = new List<SpinTail>();
        void Measure(string name, SessionOptions so)
        {
            using (so)
            using (var runner = new GraphRunner(engineGraph, so, workload))
            {
                runner.Run(8);
                var every = new double[3];
                for (var i = 0; i < every.Length; i++)
                {
                    ProcessCpu.Settle(TimeSpan.FromSeconds(5));
                    runner.Run(8);
                    var cpu0 = ProcessCpu.ProcessSeconds();
                    var self0 = ProcessCpu.ThreadSeconds();
                    Thread.Sleep(1000);
                    every[i] = 1000 * (ProcessCpu.ProcessSeconds() - cpu0 - (ProcessCpu.ThreadSeconds() - self0));
                }
                tails.Add(new SpinTail(name, every.Order().ElementAt(1), every));
            }
        }
        Measure("ORT defaults, intra-op pool of one thread per core (the earlier engine; each session of (b))", Options());
        Measure("intra-op pool, session.intra_op.allow_spinning=0", Options(spinning: false));
        Measure("intra-op pool, session.force_spinning_stop=1", Options(stopSpinningAfterRun: true));
        Measure("single-threaded session (the engine now: no pool)", Options(threads: 1));
        return tails;
    }

    /// <summary>Profiles the engine's single-threaded session with ORT's profiler and sums kernel time per op type.</summary>
    public static OpProfile Profile(string variant, byte[] graph, Workload workload, int batch, int runs)
    {
        var dir = Directory.CreateTempSubdirectory("freebind-profile-");
        try
        {
            string file;
            using (var so = Options(threads: 1, profilePrefix: Path.Combine(dir.FullName, "ort")))
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
        foreach (var o in _ownedAsync) o.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}
