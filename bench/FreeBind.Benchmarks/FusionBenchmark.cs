using System.Globalization;
using System.Text;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace FreeBind.Benchmarks;

internal sealed record FusionBenchmarkOptions(string ModelsDir, IReadOnlyList<int> Batches, double Seconds, string Python,
    string TorchScript, bool Torch, bool Investigate, int InvestigateBatch, string Command, string Provider = "cpu");

/// <summary>One batch size of the sweep: every round's timings of (a), (a0), (b) and of (a0), (a) right after (b).</summary>
internal sealed record SweepRow(int Batch, IReadOnlyList<IReadOnlyList<Timing>> Rounds, IReadOnlyList<IReadOnlyList<Timing>> AfterB, Timing? Torch, float DiffAB, float DiffAA0)
{
    public Timing A => Timer.Combine(Rounds)[0];
    public Timing A0 => Timer.Combine(Rounds)[1];
    public Timing B => Timer.Combine(Rounds)[2];
    public Timing A0AfterB => Timer.Combine(AfterB)[0];
    public Timing AAfterB => Timer.Combine(AfterB)[1];
}

/// <summary>
/// The <c>fusion</c> benchmark: (a) the engine's compiled mixture as <c>FuseBatch</c> runs it,
/// (a0) the engine as it ran before, (b) ORT running the 14 projector files, (c) PyTorch, (d) the
/// FMA peak — all in one run, over a sweep of batch sizes timed round-robin — then what the speed
/// depends on (ORT's intra-op pool, spinning, the row split, the micro-batcher, layouts) at one
/// batch size. Returns the markdown report.
/// </summary>
internal static class FusionBenchmark
{
    private const float Tolerance = 1e-5f;

    /// <summary>
    /// Every batch size is timed in this many rounds, the sweep's batch sizes one after the other
    /// inside each round, so a change of the machine's load reaches every batch size alike; the
    /// report gives the median round and every round's ratios.
    /// </summary>
    private const int Rounds = 3;

    public static async Task<string> RunAsync(FusionBenchmarkOptions o)
    {
        var machine = Machine.Describe();
        var maxBatch = o.Batches.Max();
        var investigateBatch = Math.Min(o.InvestigateBatch, maxBatch);
        Log($"machine: {machine.Model} ({machine.VendorFamily}), {machine.Cores} cores, {machine.NominalMhz:F0} MHz, AVX-512 {(machine.Avx512 ? "yes" : "no")}, load {machine.LoadAverage}");
        var workload = Workload.Load(o.ModelsDir, maxBatch);

        Log("(d) FMA peak …");
        var peaks = FmaPeak.Measure(1.0);
        foreach (var p in peaks) Log($"    {p.Kernel} × {p.Threads} thread(s): {p.GflopsPerSecond:F1} GFLOP/s");

        // Torch runs first, while no ORT thread pool exists in this process to compete with it.
        TorchReport? torch = null, torchBothPools = null;
        if (o.Torch)
        {
            Log("(c) PyTorch subprocess …");
            torch = TorchReference.Run(o.Python, o.TorchScript, o.ModelsDir, o.Batches, o.Seconds, workload, torchThreads: 1);
            Log($"    torch {torch.TorchVersion}, {torch.Threads} threads, OpenBLAS core {torch.OpenBlasCore} ({torch.OpenBlasThreads} threads)");
            // The configuration (c) avoids, measured so the choice stays checkable: torch's own pool
            // at one thread per core too, next to OpenBLAS's.
            torchBothPools = TorchReference.Run(o.Python, o.TorchScript, o.ModelsDir, [maxBatch], o.Seconds, workload, torchThreads: Environment.ProcessorCount);
            Log($"    torch with {torchBothPools.Threads} threads: {torchBothPools.Timings[0].ItemsPerSecond:F1} items/s at batch {maxBatch}");
        }

        var engineGraph = MixtureGraphBuilder.Build(workload.Weights);
        IReadOnlyList<SpinTail>? tails = null;
        if (o.Investigate)
        {
            Log("CPU spent after one Run, per session kind …");
            tails = Investigation.SpinTails(engineGraph, workload);
            foreach (var t in tails) Log($"    {t.Session}: {t.CpuMs:F1} ms");
        }

        var sessions = new SessionFactory(new OnnxOptions { ExecutionProvider = o.Provider, VerifyProjectors = false }, new ConsoleLogger<SessionFactory>());
        await using var fusion = FusionPath.Create(sessions, workload);
        await using var earlier = EarlierEnginePath.Create(sessions, workload);
        using var baseline = new ProjectorSessionsBaseline(workload, sessions.Create);

        var checks = new Dictionary<int, (float AB, float AA0)>();
        foreach (var batch in o.Batches)
        {
            var a = fusion.RunFlat(batch);
            var dab = Workload.MaxAbsDiff(a, baseline.Run(batch));
            var da0 = Workload.MaxAbsDiff(a, earlier.RunFlat(batch));
            if (!(dab <= Tolerance) || !(da0 <= Tolerance))
                throw new InvalidOperationException($"batch {batch}: (a) differs from (b) by {dab:G3} and from (a0) by {da0:G3} (> {Tolerance}); the benchmark would be timing a wrong path");
            checks[batch] = (dab, da0);
        }
        float? diffAC = torch?.LargestBatchOutput is { } tc ? Workload.MaxAbsDiff(fusion.RunFlat(maxBatch), tc) : null;

        var main = o.Batches.ToDictionary(b => b, _ => new List<IReadOnlyList<Timing>>());
        var afterB = o.Batches.ToDictionary(b => b, _ => new List<IReadOnlyList<Timing>>());
        for (var round = 0; round < Rounds; round++)
        {
            foreach (var batch in o.Batches)
            {
                Log($"round {round + 1}/{Rounds}, batch {batch} (load {Machine.LoadAverageNow()}) …");
                var t = Timer.Interleaved(batch,
                [
                    new("(a) engine", () => fusion.Run(batch)),
                    new("(a0) earlier engine", () => earlier.Run(batch)),
                    new("(b) ORT 14 sessions", () => baseline.Run(batch)),
                ], o.Seconds / Rounds, minIterations: 3, settle: true);
                main[batch].Add(t);
                // The earlier benchmark's situation: a call right after (b), whose 14 pools still spin.
                afterB[batch].Add(Timer.Interleaved(batch,
                [
                    new("(a0) right after (b)", () => earlier.Run(batch), () => baseline.Run(batch)),
                    new("(a) right after (b)", () => fusion.Run(batch), () => baseline.Run(batch)),
                ], o.Seconds / Rounds / 2, minIterations: 2, settle: true));
                Log($"    (a) {t[0].ItemsPerSecond:F1}, (a0) {t[1].ItemsPerSecond:F1}, (b) {t[2].ItemsPerSecond:F1} items/s; CPU ms/item {t[0].CpuMsPerItem:F2}, {t[1].CpuMsPerItem:F2}, {t[2].CpuMsPerItem:F2}");
            }
        }
        var rows = o.Batches.Select(b => new SweepRow(b, main[b], afterB[b], torch?.Timings.FirstOrDefault(x => x.Batch == b), checks[b].AB, checks[b].AA0)).ToList();

        List<(Timing T, float Diff, double[] RoundRatios)>? experiments = null;
        OpProfile? profile = null;
        if (o.Investigate)
        {
            Log($"investigation at batch {investigateBatch} …");
            using var investigation = new Investigation(workload);
            var cases = investigation.Cases(engineGraph, investigateBatch);
            var reference = fusion.RunFlat(investigateBatch);
            var diffs = cases.Select(c => Workload.MaxAbsDiff(c.Run(investigateBatch), reference)).ToList();
            var (timed, perRound) = Timer.InRounds(Rounds, () => Timer.Interleaved(investigateBatch,
                [.. cases.Select(c => new TimedCase(c.Name, () => c.Run(investigateBatch)))], o.Seconds / Rounds, minIterations: 3, settle: true));
            experiments = [.. timed.Select((t, i) => (t, diffs[i], perRound.Select(r => r[i].ItemsPerSecond / r[0].ItemsPerSecond).ToArray()))];
            foreach (var (t, d, _) in experiments) Log($"    {t.Case}: {t.ItemsPerSecond:F1} items/s, {t.CpuMsPerItem:F2} CPU ms/item (max |Δ| vs (a) {d:G3})");
            profile = Investigation.Profile("engine graph, single-threaded session", engineGraph, workload, investigateBatch, 3);
        }

        // The peak again at the end; the better of the two figures stands (other load only lowers it).
        Log("(d) FMA peak again …");
        peaks = [.. peaks.Zip(FmaPeak.Measure(1.0), (x, y) => x.GflopsPerSecond >= y.GflopsPerSecond ? x : y)];
        return Report(o, machine with { LoadAverage = $"{machine.LoadAverage} → {Machine.LoadAverageNow()}" },
            peaks, MachinePeak(peaks, 8), MachinePeak(peaks, 16), torch, torchBothPools, rows, diffAC, tails, experiments, profile, investigateBatch);
    }

    /// <summary>
    /// The batch to use: the smallest whose CPU per item is within 10 % of the sweep's lowest and
    /// whose items/s is within 10 % of its highest (or, if none is both, the smallest of the first kind).
    /// </summary>
    internal static int Recommend(IReadOnlyList<(int Batch, double ItemsPerSecond, double CpuMsPerItem)> sweep)
    {
        var lowestCpu = sweep.Min(s => s.CpuMsPerItem);
        var highest = sweep.Max(s => s.ItemsPerSecond);
        var cheap = sweep.Where(s => s.CpuMsPerItem <= 1.10 * lowestCpu).OrderBy(s => s.Batch).ToList();
        var both = cheap.Where(s => s.ItemsPerSecond >= 0.90 * highest).ToList();
        return both.Count > 0 ? both[0].Batch : cheap[0].Batch;
    }

    // The denominator for "% of peak": the all-core figure, or the best single core × cores when
    // other processes held the all-core run down (a shared machine lowers it, never raises it).
    private static PeakResult? MachinePeak(IReadOnlyList<PeakResult> peaks, int lanes)
    {
        var width = peaks.Where(p => p.Lanes == lanes).ToList();
        if (width.Count == 0) return null;
        var cores = Environment.ProcessorCount;
        var all = width.Where(p => p.Threads == cores).MaxBy(p => p.GflopsPerSecond);
        var single = width.Where(p => p.Threads == 1).MaxBy(p => p.GflopsPerSecond);
        var scaled = single is null ? null : single with { Kernel = single.Kernel + " (1 core × cores)", Threads = cores, GflopsPerSecond = single.GflopsPerSecond * cores };
        return all is null || (scaled is not null && scaled.GflopsPerSecond > all.GflopsPerSecond) ? scaled : all;
    }

    private static string Report(FusionBenchmarkOptions o, Machine machine, IReadOnlyList<PeakResult> peaks, PeakResult? peak256, PeakResult? peak512,
        TorchReport? torch, TorchReport? torchBothPools, List<SweepRow> rows, float? diffAC, IReadOnlyList<SpinTail>? tails,
        List<(Timing T, float Diff, double[] RoundRatios)>? experiments, OpProfile? profile, int investigateBatch)
    {
        var s = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        string F(double v, string f = "F1") => double.IsNaN(v) ? "—" : v.ToString(f, inv);
        string Pct(double v, PeakResult? p) => p is null ? "—" : F(100 * v / p.GflopsPerSecond, "F0") + " %";
        string Ratios(IEnumerable<double> ratios) => string.Join(", ", ratios.Select(r => F(r, "F2") + "×"));
        string PerRound(SweepRow r, int x, int y) => Ratios(r.Rounds.Select(t => t[x].ItemsPerSecond / t[y].ItemsPerSecond));
        s.AppendLine("## Fusion: ImageBind++ audio mixture (14 projectors, 512 → 2048 → 1024)").AppendLine();
        s.AppendLine("```").AppendLine(o.Command).AppendLine("```").AppendLine();
        s.AppendLine($"- Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {machine.Model} ({machine.VendorFamily}), {machine.Cores} cores, " +
                     $"{F(machine.NominalMhz, "F0")} MHz nominal (lscpu/cpuinfo), AVX-512 {(machine.Avx512 ? "yes" : "no")}; load average {machine.LoadAverage} " +
                     "(a shared machine: other processes ran meanwhile, so absolute figures move with its load; the ratios come from cases timed alternately in the same run).");
        s.AppendLine($"- ONNX Runtime {OrtEnv.Instance().GetVersionString()} CPU; (a) the engine's mixture as `FusionEngine.FuseBatch` runs a bond step (`CompiledMixture`: single-threaded session, rows split into ≤ {Environment.ProcessorCount} concurrent runs of ≥ 32 rows); " +
                     "(a0) the engine before this change (one session from `SessionFactory`: ORT_ENABLE_ALL, intra-op pool of one thread per core, ORT's spinning defaults; one `Run` per batch); (b) the 14 projector files, one such session each" +
                     (torch is null ? "." : $"; (c) PyTorch {torch.TorchVersion}, {torch.Threads} thread(s), OpenBLAS kernel **{torch.OpenBlasCore}** ({torch.OpenBlasThreads} threads; OPENBLAS_CORETYPE/L2_SIZE unset)."));
        s.AppendLine($"- FLOPs per item = 14 × 2 × (512·2048 + 2048·1024) = {Workload.FlopsPerItem:N0}. Batch sizes are timed one after the other inside each of {Rounds} rounds (a load change reaches them all); inside a batch size (a), (a0), (b) take turns call by call, " +
                     $"≥ 3 calls and ≥ {F(o.Seconds / Rounds, "F2")} s each per round. **Each call starts with the process idle** (no thread of it runnable: no pool still spinning from an earlier call), and its CPU time is the whole process's from the call's start until it is idle again " +
                     "(its work plus whatever it left spinning). Tables give the median round; ratios per round show the spread.");
        s.AppendLine();
        s.AppendLine("| batch | (a) items/s | (a) CPU ms/item | (a0) items/s | (a0) CPU ms/item | (b) items/s | (b) CPU ms/item | (c) items/s | (a)/(a0) | (a)/(b) | (a)/(c) | (a) % AVX-512 peak | max \\|a−b\\| | (a)/(a0) per round | (a)/(b) per round |");
        s.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
        foreach (var r in rows)
        {
            var (a, a0, b, c) = (r.A, r.A0, r.B, r.Torch);
            s.AppendLine($"| {r.Batch} | {F(a.ItemsPerSecond)} | {F(a.CpuMsPerItem, "F2")} | {F(a0.ItemsPerSecond)} | {F(a0.CpuMsPerItem, "F2")} | {F(b.ItemsPerSecond)} | {F(b.CpuMsPerItem, "F2")} | " +
                         $"{(c is null ? "—" : F(c.ItemsPerSecond))} | {F(a.ItemsPerSecond / a0.ItemsPerSecond, "F2")}× | {F(a.ItemsPerSecond / b.ItemsPerSecond, "F2")}× | " +
                         $"{(c is null ? "—" : F(a.ItemsPerSecond / c.ItemsPerSecond, "F2") + "×")} | {Pct(a.Gflops, peak512)} | {r.DiffAB:G2} | {PerRound(r, 0, 1)} | {PerRound(r, 0, 2)} |");
        }
        s.AppendLine();
        var recommended = Recommend([.. rows.Select(r => (r.Batch, r.A.ItemsPerSecond, r.A.CpuMsPerItem))]);
        var best = rows.MaxBy(r => r.A.ItemsPerSecond)!;
        var rec = rows.Single(r => r.Batch == recommended);
        s.AppendLine($"**Batch for re-fusion: {recommended}** — the smallest batch whose (a) CPU per item is within 10 % of the sweep's lowest ({F(rows.Min(r => r.A.CpuMsPerItem), "F2")} ms) and whose items/s is within 10 % of its highest " +
                     $"({F(best.A.ItemsPerSecond)} at batch {best.Batch}); at {recommended}: {F(rec.A.ItemsPerSecond)} items/s, {F(rec.A.CpuMsPerItem, "F2")} CPU ms per item.");
        s.AppendLine();
        if (diffAC is { } dac) s.AppendLine($"(a) vs (c) at batch {rows[^1].Batch}: max |Δ| = {dac:G2}; (a) vs (a0): at most {rows.Max(r => r.DiffAA0):G2} over the sweep (same function, same atoms).").AppendLine();
        if (torch is not null && torchBothPools is not null && torch.Timings.FirstOrDefault(x => x.Batch == rows[^1].Batch) is { } c1)
        {
            var c2 = torchBothPools.Timings[0];
            s.AppendLine($"PyTorch thread pools at batch {c2.Batch} (each a subprocess of this run, OpenBLAS at {torch.OpenBlasThreads} threads): torch at {torch.Threads} thread(s), as (c), " +
                         $"{F(c1.ItemsPerSecond)} items/s; torch at {torchBothPools.Threads} threads {F(c2.ItemsPerSecond)} items/s ({F(c2.ItemsPerSecond / c1.ItemsPerSecond, "F2")}× of (c)).").AppendLine();
        }

        s.AppendLine("### Why the earlier engine dipped: pools spinning after their Run").AppendLine();
        if (tails is not null)
        {
            s.AppendLine("CPU the process spent in the second after one `Run` (batch 8) returned, nothing else running in it (median of 3; ONNX Runtime's intra-op workers spin up to 2^20 polls for more work unless told not to):").AppendLine();
            s.AppendLine("| session | CPU ms after one Run | every measurement |");
            s.AppendLine("|---|---:|---|");
            foreach (var t in tails) s.AppendLine($"| {t.Session} | {F(t.CpuMs)} | {string.Join(", ", t.Every.Select(v => F(v)))} |");
            s.AppendLine();
        }
        s.AppendLine("The earlier benchmark timed (a) right after (b) with nothing settled between them, so the spinning of (b)'s 14 pools fell into (a)'s time. The same call timed right after (b), relative to the same call timed with the process idle (median round; every round):").AppendLine();
        s.AppendLine("| batch | (a0) right after (b) ÷ (a0) alone | every round | (a) right after (b) ÷ (a) alone | every round |");
        s.AppendLine("|---:|---:|---|---:|---|");
        foreach (var r in rows)
        {
            string Slow(int after, int alone) => F(r.AfterB.Select((t, i) => t[after].ItemsPerSecond / r.Rounds[i][alone].ItemsPerSecond).Order().ElementAt(r.AfterB.Count / 2), "F2") + "×";
            string Every(int after, int alone) => Ratios(r.AfterB.Select((t, i) => t[after].ItemsPerSecond / r.Rounds[i][alone].ItemsPerSecond));
            s.AppendLine($"| {r.Batch} | {Slow(0, 1)} | {Every(0, 1)} | {Slow(1, 0)} | {Every(1, 0)} |");
        }
        s.AppendLine();

        s.AppendLine("(d) FMA peak, measured in this run at its start and end, the better of the two (independent accumulators, no memory traffic); \"% of peak\" uses the all-core figure or the best single core × cores, whichever is higher:").AppendLine();
        s.AppendLine("| kernel | threads | GFLOP/s | FLOP/cycle/core at nominal clock |");
        s.AppendLine("|---|---:|---:|---:|");
        foreach (var p in peaks)
            s.AppendLine($"| {p.Kernel} | {p.Threads} | {F(p.GflopsPerSecond)} | {(machine.NominalMhz > 0 ? F(p.GflopsPerSecond * 1000 / machine.NominalMhz / p.Threads) : "?")} |");
        s.AppendLine();
        s.AppendLine($"Peak used for \"% of peak\": AVX2 {(peak256 is null ? "—" : F(peak256.GflopsPerSecond) + " GFLOP/s (" + peak256.Kernel + ")")}, " +
                     $"AVX-512 {(peak512 is null ? "—" : F(peak512.GflopsPerSecond) + " GFLOP/s (" + peak512.Kernel + ")")}.");
        s.AppendLine();
        var last = rows[^1].A;
        s.AppendLine($"Goals at batch {rows[^1].Batch}: (a)/(b) = {F(last.ItemsPerSecond / rows[^1].B.ItemsPerSecond, "F2")}× (goal ≥ 1.0×: {(last.ItemsPerSecond >= rows[^1].B.ItemsPerSecond ? "met" : "missed")}); " +
                     $"(a) = {Pct(last.Gflops, peak256)} of the Vector256 FMA peak (goal ≥ 60 %: {(peak256 is not null && last.Gflops >= 0.6 * peak256.GflopsPerSecond ? "met" : "missed")}), {Pct(last.Gflops, peak512)} of the Vector512 peak.");
        s.AppendLine();
        if (experiments is not null)
        {
            s.AppendLine($"### What the speed depends on, at batch {investigateBatch} (each call with the process idle, round-robin, {Rounds} rounds)").AppendLine();
            s.AppendLine("| case | items/s | CPU ms/item | vs (a) | vs (a) per round | % AVX-512 peak | max \\|Δ\\| vs (a) |");
            s.AppendLine("|---|---:|---:|---:|---|---:|---:|");
            var reference = experiments[0].T;
            foreach (var (t, d, ratios) in experiments)
                s.AppendLine($"| {t.Case} | {F(t.ItemsPerSecond)} | {F(t.CpuMsPerItem, "F2")} | {F(t.ItemsPerSecond / reference.ItemsPerSecond, "F2")}× | {Ratios(ratios)} | {Pct(t.Gflops, peak512)} | {d:G2} |");
            s.AppendLine();
        }
        if (profile is not null)
        {
            s.AppendLine($"ORT profile, {profile.Variant}, batch {profile.Batch} (kernel time per Run, ops after ORT's fusions):").AppendLine();
            s.AppendLine("| op | nodes | ms per Run |");
            s.AppendLine("|---|---:|---:|");
            foreach (var (op, nodes, ms) in profile.Ops) s.AppendLine($"| {op} | {nodes} | {F(ms, "F2")} |");
            s.AppendLine();
        }
        return s.ToString();
    }

    private static void Log(string message) => Console.Error.WriteLine(message);
}

/// <summary>Prints the execution-provider line (which provider runs and why) to stderr.</summary>
internal sealed class ConsoleLogger<T> : Microsoft.Extensions.Logging.ILogger<T>
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => logLevel >= Microsoft.Extensions.Logging.LogLevel.Information;
    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Console.Error.WriteLine($"[{logLevel}] {formatter(state, exception)}");
}
