using System.Diagnostics;
using System.Runtime.Intrinsics.X86;

namespace FreeBind.Benchmarks;

/// <summary>What the machine says about itself (lscpu, /proc), to cross-check the measured peak.</summary>
internal sealed record Machine(string Model, string VendorFamily, int Cores, double NominalMhz, bool Avx512, string LoadAverage)
{
    public static Machine Describe()
    {
        var lscpu = Lscpu();
        string Field(string key) => lscpu.TryGetValue(key, out var v) ? v : "?";
        var mhz = 0.0;
        if (lscpu.TryGetValue("CPU max MHz", out var max)) double.TryParse(max, System.Globalization.CultureInfo.InvariantCulture, out mhz);
        if (mhz == 0 && File.Exists("/proc/cpuinfo"))
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("cpu MHz", StringComparison.Ordinal));
            if (line is not null) double.TryParse(line.Split(':')[1].Trim(), System.Globalization.CultureInfo.InvariantCulture, out mhz);
        }
        return new Machine(Field("Model name"), $"{Field("Vendor ID")} family {Field("CPU family")} model {Field("Model")}",
            Environment.ProcessorCount, mhz, Avx512F.IsSupported, LoadAverageNow());
    }

    public static string LoadAverageNow() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    private static Dictionary<string, string> Lscpu()
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var p = Process.Start(new ProcessStartInfo("lscpu") { RedirectStandardOutput = true, UseShellExecute = false });
            if (p is null) return fields;
            foreach (var line in p.StandardOutput.ReadToEnd().Split('\n'))
            {
                var i = line.IndexOf(':');
                if (i > 0) fields.TryAdd(line[..i].Trim(), line[(i + 1)..].Trim());
            }
            p.WaitForExit();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No lscpu: the model is then reported as "?", the measured peak still stands.
        }
        return fields;
    }
}
