using System.Globalization;

namespace FreeBind.Benchmarks.Refusion;

/// <summary>
/// CPU seconds of a local Postgres server: the postmaster and its children (backends, autovacuum,
/// writers), the live ones read from /proc and the exited ones from the postmaster's cutime/cstime.
/// NaN when the server is not on this machine (its data directory has no readable postmaster.pid).
/// </summary>
internal sealed class ServerCpu(int postmaster)
{
    private static readonly double TicksPerSecond = 100; // USER_HZ: 100 on every Linux this runs on

    /// <summary>The server whose data directory is <paramref name="dataDirectory"/> (SHOW data_directory), or null.</summary>
    public static ServerCpu? Find(string dataDirectory)
    {
        try
        {
            var first = File.ReadLines(Path.Combine(dataDirectory, "postmaster.pid")).First();
            return new ServerCpu(int.Parse(first, CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or InvalidOperationException)
        {
            return null;
        }
    }

    public double Seconds()
    {
        double total = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (IOException)
            {
                continue; // gone meanwhile
            }
            // "pid (comm) state ppid … utime(14) stime(15) cutime(16) cstime(17)": fields after the last ')'.
            var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ppid = int.Parse(f[1], CultureInfo.InvariantCulture);
            long Field(int n) => long.Parse(f[n - 3], CultureInfo.InvariantCulture);
            if (pid == postmaster) total += Field(14) + Field(15) + Field(16) + Field(17);
            else if (ppid == postmaster) total += Field(14) + Field(15);
        }
        return total / TicksPerSecond;
    }
}
