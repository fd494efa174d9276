using System.Diagnostics;

namespace FreeBind.Benchmarks;

/// <summary>
/// One timed case: median seconds per call over <see cref="Iterations"/> calls of <see cref="Batch"/>
/// items and, when measured, the median CPU seconds per call of the whole process from the call's
/// start until its threads were idle again (the work and whatever it left spinning).
/// </summary>
internal sealed record Timing(string Case, int Batch, double MedianSeconds, int Iterations, double CpuSecondsPerCall = double.NaN)
{
    public double ItemsPerSecond => Batch / MedianSeconds;

    public double Gflops => ItemsPerSecond * Workload.FlopsPerItem / 1e9;

    /// <summary>CPU milliseconds per item (NaN when not measured).</summary>
    public double CpuMsPerItem => CpuSecondsPerCall * 1000 / Batch;
}

/// <summary>
/// A case to time: a name and one call that processes a whole batch; <see cref="Prelude"/>, if
/// any, runs untimed right before each call, with nothing settled in between.
/// </summary>
internal sealed record TimedCase(string Name, Action Run, Action? Prelude = null);

internal static class Timer
{
    private static readonly TimeSpan SettleLimit = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Warms every case up, then runs them round-robin (A, B, A, B, …) so that load from other
    /// processes hits every case alike, until each has had ≥ <paramref name="seconds"/> of calls and
    /// ≥ <paramref name="minIterations"/> calls. Returns the median call time of each case.
    /// With <paramref name="settle"/>, every call starts only once the process's other threads are
    /// idle (no pool still spinning from the previous call), and the process CPU time of the call
    /// until its threads are idle again is measured as well.
    /// </summary>
    public static IReadOnlyList<Timing> Interleaved(int batch, IReadOnlyList<TimedCase> cases, double seconds, int minIterations = 5, bool settle = false)
    {
        foreach (var c in cases)
        {
            var warm = Stopwatch.StartNew();
            for (var i = 0; i < 2 || warm.Elapsed.TotalSeconds < Math.Min(0.3, seconds / 4); i++)
            {
                c.Prelude?.Invoke();
                c.Run();
            }
        }
        var samples = cases.Select(_ => new List<double>()).ToArray();
        var cpu = cases.Select(_ => new List<double>()).ToArray();
        var spent = new double[cases.Count];
        while (Enumerable.Range(0, cases.Count).Any(i => spent[i] < seconds || samples[i].Count < minIterations))
        {
            for (var i = 0; i < cases.Count; i++)
            {
                if (spent[i] >= seconds && samples[i].Count >= minIterations) continue;
                if (settle) ProcessCpu.Settle(SettleLimit);
                cases[i].Prelude?.Invoke();
                var cpu0 = settle ? ProcessCpu.ProcessSeconds() : 0;
                var t0 = Stopwatch.GetTimestamp();
                cases[i].Run();
                var dt = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                if (settle)
                {
                    var (_, polling) = ProcessCpu.Settle(SettleLimit);
                    cpu[i].Add(ProcessCpu.ProcessSeconds() - cpu0 - polling);
                }
                samples[i].Add(dt);
                spent[i] += dt;
            }
        }
        return [.. cases.Select((c, i) => new Timing(c.Name, batch, Median(samples[i]), samples[i].Count, settle ? Median(cpu[i]) : double.NaN))];
    }

    /// <summary>
    /// Runs a whole timing <paramref name="rounds"/> times; returns, per case, the median of the
    /// rounds' medians, and every round's timings (for the spread).
    /// </summary>
    public static (IReadOnlyList<Timing> Median, IReadOnlyList<IReadOnlyList<Timing>> Rounds) InRounds(int rounds, Func<IReadOnlyList<Timing>> time)
    {
        var all = Enumerable.Range(0, rounds).Select(_ => time()).ToList();
        return (Combine(all), all);
    }

    /// <summary>Per case, the median of the rounds' medians (wall and CPU) and the sum of their calls.</summary>
    public static IReadOnlyList<Timing> Combine(IReadOnlyList<IReadOnlyList<Timing>> rounds) =>
        [.. rounds[0].Select((t, i) => t with
        {
            MedianSeconds = Median([.. rounds.Select(r => r[i].MedianSeconds)]),
            CpuSecondsPerCall = Median([.. rounds.Select(r => r[i].CpuSecondsPerCall)]),
            Iterations = rounds.Sum(r => r[i].Iterations),
        })];

    private static double Median(List<double> values)
    {
        if (values.Count == 0) return double.NaN;
        values.Sort();
        var n = values.Count;
        return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    }
}
