using System.Diagnostics;

namespace FreeBind.Benchmarks;

/// <summary>One timed case: median seconds per call over <see cref="Iterations"/> calls of <see cref="Batch"/> items.</summary>
internal sealed record Timing(string Case, int Batch, double MedianSeconds, int Iterations)
{
    public double ItemsPerSecond => Batch / MedianSeconds;

    public double Gflops => ItemsPerSecond * Workload.FlopsPerItem / 1e9;
}

/// <summary>A case to time: a name and one call that processes a whole batch.</summary>
internal sealed record TimedCase(string Name, Action Run);

internal static class Timer
{
    /// <summary>
    /// Warms every case up, then runs them round-robin (A, B, A, B, …) so that load from other
    /// processes hits every case alike, until each has had ≥ <paramref name="seconds"/> of calls and
    /// ≥ <paramref name="minIterations"/> calls. Returns the median call time of each case.
    /// </summary>
    public static IReadOnlyList<Timing> Interleaved(int batch, IReadOnlyList<TimedCase> cases, double seconds, int minIterations = 5)
    {
        foreach (var c in cases)
        {
            var warm = Stopwatch.StartNew();
            for (var i = 0; i < 2 || warm.Elapsed.TotalSeconds < Math.Min(0.3, seconds / 4); i++) c.Run();
        }
        var samples = cases.Select(_ => new List<double>()).ToArray();
        var spent = new double[cases.Count];
        while (Enumerable.Range(0, cases.Count).Any(i => spent[i] < seconds || samples[i].Count < minIterations))
        {
            for (var i = 0; i < cases.Count; i++)
            {
                if (spent[i] >= seconds && samples[i].Count >= minIterations) continue;
                var t0 = Stopwatch.GetTimestamp();
                cases[i].Run();
                var dt = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                samples[i].Add(dt);
                spent[i] += dt;
            }
        }
        return [.. cases.Select((c, i) => new Timing(c.Name, batch, Median(samples[i]), samples[i].Count))];
    }

    /// <summary>
    /// Runs a whole timing <paramref name="rounds"/> times; returns, per case, the median of the
    /// rounds' medians, and every round's timings (for the spread).
    /// </summary>
    public static (IReadOnlyList<Timing> Median, IReadOnlyList<IReadOnlyList<Timing>> Rounds) InRounds(int rounds, Func<IReadOnlyList<Timing>> time)
    {
        var all = Enumerable.Range(0, rounds).Select(_ => time()).ToList();
        var median = all[0].Select((t, i) => t with
        {
            MedianSeconds = Median([.. all.Select(r => r[i].MedianSeconds)]),
            Iterations = all.Sum(r => r[i].Iterations),
        }).ToList();
        return (median, all);
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        var n = values.Count;
        return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    }
}
