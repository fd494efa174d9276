using System.Diagnostics;
using System.Text.Json;

namespace FreeBind.Benchmarks;

/// <summary>What <c>tools/reference/bench_torch.py</c> reported.</summary>
internal sealed record TorchReport(string TorchVersion, int Threads, string OpenBlasCore, int OpenBlasThreads,
    IReadOnlyList<Timing> Timings, float[]? LargestBatchOutput);

/// <summary>
/// (c) The PyTorch reference, run as a subprocess of this benchmark (Debian's python3-torch).
/// OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from its environment so OpenBLAS picks its own
/// kernel for this CPU; the kernel it picked is reported.
/// </summary>
internal static class TorchReference
{
    public static TorchReport Run(string python, string script, string modelsDir, IReadOnlyList<int> batches, double seconds, Workload workload, int torchThreads)
    {
        var dir = Directory.CreateTempSubdirectory("freebind-bench-");
        try
        {
            var inputs = Path.Combine(dir.FullName, "atoms.f32");
            var outputs = Path.Combine(dir.FullName, "mixture.f32");
            workload.WriteAtoms(inputs);
            // GEMMs (≈ all of the work) run on OpenBLAS's own pool, one thread per core; (c) keeps
            // torch's intra-op pool at 1 so the two pools do not oversubscribe the cores (the benchmark
            // also measures both at one thread per core). OpenBLAS picks its own kernel (the core-type
            // overrides of this environment are removed).
            using var json = PythonScript.RunJson(python,
                [script, "--models", modelsDir, "--batches", string.Join(',', batches), "--seconds",
                 seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), "--threads", torchThreads.ToString(System.Globalization.CultureInfo.InvariantCulture), "--inputs", inputs, "--outputs", outputs],
                new Dictionary<string, string?>
                {
                    ["OPENBLAS_CORETYPE"] = null,
                    ["OPENBLAS_L2_SIZE"] = null,
                    ["OPENBLAS_NUM_THREADS"] = Environment.ProcessorCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
                });
            var root = json.RootElement;
            var blas = root.GetProperty("openblas");
            var timings = root.GetProperty("results").EnumerateArray()
                .Select(r => new Timing("(c) PyTorch", r.GetProperty("batch").GetInt32(), r.GetProperty("median_s").GetDouble(), r.GetProperty("iterations").GetInt32()))
                .ToList();
            float[]? output = null;
            if (File.Exists(outputs))
            {
                var bytes = File.ReadAllBytes(outputs);
                output = new float[bytes.Length / sizeof(float)];
                Buffer.BlockCopy(bytes, 0, output, 0, bytes.Length);
            }
            return new TorchReport(root.GetProperty("torch").GetString() ?? "?", root.GetProperty("torch_threads").GetInt32(),
                blas.TryGetProperty("core", out var core) ? core.GetString() ?? "?" : $"unknown ({blas})",
                blas.TryGetProperty("threads", out var t) ? t.GetInt32() : -1, timings, output);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
