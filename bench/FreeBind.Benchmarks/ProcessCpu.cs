using System.Diagnostics;
using System.Runtime.InteropServices;

namespace FreeBind.Benchmarks;

/// <summary>
/// CPU time of this process (every thread, ONNX Runtime's pools included) and a wait until none of
/// its other threads is runnable, so one case's leftovers (a pool spinning after its <c>Run</c>)
/// are neither timed nor charged to the next case. Linux only (getrusage, /proc).
/// </summary>
internal static partial class ProcessCpu
{
    [StructLayout(LayoutKind.Sequential)]
    private struct RUsage
    {
        public long UserSeconds, UserMicros, SystemSeconds, SystemMicros;
        public long MaxRss, IxRss, IdRss, IsRss, MinorFaults, MajorFaults, Swaps, InBlocks, OutBlocks, MsgSent, MsgReceived, Signals, VoluntarySwitches, InvoluntarySwitches;
    }

    private const int Self = 0;
    private const int Thread = 1;

    [LibraryImport("libc.so.6", EntryPoint = "getrusage", SetLastError = true)]
    private static partial int GetRUsage(int who, out RUsage usage);

    [LibraryImport("libc.so.6", EntryPoint = "gettid")]
    private static partial int GetTid();

    private static double Seconds(int who)
    {
        if (GetRUsage(who, out var u) != 0) throw new InvalidOperationException($"getrusage failed (errno {Marshal.GetLastPInvokeError()})");
        return u.UserSeconds + u.UserMicros / 1e6 + u.SystemSeconds + u.SystemMicros / 1e6;
    }

    /// <summary>CPU seconds used so far by every thread of the process.</summary>
    public static double ProcessSeconds() => Seconds(Self);

    /// <summary>CPU seconds used so far by the calling thread.</summary>
    public static double ThreadSeconds() => Seconds(Thread);

    /// <summary>
    /// Waits until no thread of the process but the caller is runnable (state R) on two polls in a
    /// row, at most <paramref name="limit"/>; returns false if the limit was reached. The caller's
    /// own CPU while polling is returned too, so it can be left out of a case's CPU time.
    /// </summary>
    public static (bool Settled, double PollingCpuSeconds) Settle(TimeSpan limit)
    {
        var self = GetTid().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var cpu0 = ThreadSeconds();
        var clock = Stopwatch.StartNew();
        var quiet = 0;
        while (clock.Elapsed < limit)
        {
            quiet = AnyOtherRunnable(self) ? 0 : quiet + 1;
            if (quiet >= 2) return (true, ThreadSeconds() - cpu0);
            System.Threading.Thread.Sleep(5);
        }
        return (false, ThreadSeconds() - cpu0);
    }

    private static bool AnyOtherRunnable(string self)
    {
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            if (Path.GetFileName(task) == self) continue;
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(task, "stat"));
            }
            catch (IOException)
            {
                continue; // the thread ended meanwhile
            }
            // "tid (comm) S …": the name may hold spaces and parentheses, the state follows the last ')'.
            var close = stat.LastIndexOf(')');
            if (close > 0 && close + 2 < stat.Length && stat[close + 2] == 'R') return true;
        }
        return false;
    }
}
