using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Preprocessing.Audio;

namespace FreeBind.Benchmarks;

/// <summary>
/// The <c>preprocess</c> benchmark (issue 3, Speed): throughput per core of the registered C#
/// preprocessors (what the engine runs: <see cref="IPreprocessor.Process"/> on bytes in memory,
/// decoding and resampling included) against the Python reference recipes run on one thread by
/// <c>tools/reference/bench_preprocess.py</c> in the same run, on the same inputs.
/// </summary>
internal static class PreprocessBenchmark
{
    private const string Usage = """
        usage: dotnet run -c Release --project bench/FreeBind.Benchmarks -- preprocess [options]

          --media DIR         BBQ/toilet/train .jpeg and .wav (default: $FREEBIND_SHARED or ../shared, media/freebind-samples)
          --vocab FILE        CLIP bpe_simple_vocab_16e6.txt.gz (default: the shared vocab folder)
          --seconds S         timed seconds per case and side, default 1.5
          --warmup N          untimed C# Process calls per profile before timing, default 50 (tiered JIT settles)
          --text-repeat N     captions per text call = 3 × N, default 20
          --python PATH       interpreter for the reference, default /usr/bin/python3
          --no-python         C# only
          --docs PATH         markdown file to update (default: docs/benchmarks.md of the repository)
          --no-docs           print only
        """;

    private const double Goal = 1.0;
    private const int Rounds = 2;

    private sealed record Case(string Profile, string Unit, double UnitsPerCall, int ItemsPerCall, Action Run);

    private sealed record PythonReport(string Versions, IReadOnlyDictionary<string, (double UnitsPerCall, double MedianSeconds, int Iterations)> Results);

    /// <summary>Entry point of the subcommand; <paramref name="args"/> excludes the word <c>preprocess</c>.</summary>
    public static int RunCommand(string[] args)
    {
        var root = RepositoryRoot();
        var shared = Environment.GetEnvironmentVariable("FREEBIND_SHARED") is { Length: > 0 } s
            ? s : Path.GetFullPath(Path.Combine(root ?? ".", "..", "shared"));
        string media = Path.Combine(shared, "media", "freebind-samples"), vocab = Path.Combine(shared, "vocab", "bpe_simple_vocab_16e6.txt.gz");
        var python = "/usr/bin/python3";
        string? docs = null;
        double seconds = 1.5;
        int warmup = 50, textRepeat = 20;
        bool runPython = true, writeDocs = true;
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--media": media = Value(); break;
                case "--vocab": vocab = Value(); break;
                case "--seconds": seconds = double.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--warmup": warmup = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--text-repeat": textRepeat = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--python": python = Value(); break;
                case "--no-python": runPython = false; break;
                case "--docs": docs = Value(); break;
                case "--no-docs": writeDocs = false; break;
                default:
                    Console.Error.WriteLine($"unknown option {args[i]}\n{Usage}");
                    return 2;
            }
        }
        var command = "dotnet run -c Release --project bench/FreeBind.Benchmarks -- preprocess" + (args.Length > 0 ? " " + string.Join(' ', args) : "");
        var script = Path.Combine(root ?? ".", "tools", "reference", "bench_preprocess.py");
        var report = Run(media, vocab, seconds, warmup, textRepeat, runPython ? python : null, script, command);
        Console.WriteLine(report);
        if (writeDocs)
        {
            docs ??= Path.Combine(root ?? throw new InvalidOperationException("repository root not found; pass --docs PATH or --no-docs"), "docs", "benchmarks.md");
            BenchmarkDocs.WriteSection(docs, "preprocess", report);
            Console.Error.WriteLine($"updated {docs}");
        }
        return 0;
    }

    private static string Run(string media, string vocab, double seconds, int warmup, int textRepeat, string? python, string script, string command)
    {
        var machine = Machine.Describe();
        Log($"machine: {machine.Model}, {machine.Cores} cores, load {machine.LoadAverage}");
        var cases = Cases(media, vocab, textRepeat);

        // The sides take turns, reference, C#, reference, C#, each alone on the machine; per case
        // each side's faster run counts (load from other processes only ever slows a run down).
        Log($"C#: warm-up, ≥ {warmup} Process calls per profile …");
        var warmWatch = Stopwatch.StartNew();
        foreach (var c in cases)
            for (var i = 0; i < Math.Max(3, (warmup + c.ItemsPerCall - 1) / c.ItemsPerCall); i++) c.Run();
        // Tier-1 code is compiled in the background once call counts are reached: let it land.
        Thread.Sleep(500);
        foreach (var c in cases) c.Run();
        Log($"    {warmWatch.Elapsed.TotalSeconds:F1} s");

        var reference = new List<PythonReport>();
        var csharp = new List<IReadOnlyList<Timing>>();
        for (var round = 1; round <= Rounds; round++)
        {
            if (python is not null)
            {
                Log($"Python reference ({round}/{Rounds}) …");
                reference.Add(RunPython(python, script, media, vocab, seconds, textRepeat));
            }
            Log($"C# ({round}/{Rounds}) …");
            var t = Timer.Interleaved(1, [.. cases.Select(c => new TimedCase(c.Profile, c.Run))], seconds);
            foreach (var (c, x) in cases.Zip(t)) Log($"    {c.Profile}: {c.UnitsPerCall / x.MedianSeconds:F1} per s ({x.Iterations} calls)");
            csharp.Add(t);
        }
        return Report(command, machine with { LoadAverage = $"{machine.LoadAverage} → {Machine.LoadAverageNow()}" },
            cases, csharp, reference, warmup, seconds, textRepeat);
    }

    private static List<Case> Cases(string media, string vocab, int textRepeat)
    {
        var names = new[] { "BBQ", "toilet", "train" };
        byte[] Read(string file)
        {
            var path = Path.Combine(media, file);
            return File.Exists(path) ? File.ReadAllBytes(path) : throw new FileNotFoundException($"sample '{path}' is missing (pass --media DIR or set FREEBIND_SHARED)", path);
        }
        var options = new PreprocessingOptions();
        var jpegs = names.Select(n => new MediaInput(Modality.Image, Read(n + ".jpeg"), FileName: n + ".jpeg")).ToList();
        var wavs = names.Select(n => new MediaInput(Modality.Audio, Read(n + ".wav"), FileName: n + ".wav")).ToList();
        var audioSeconds = wavs.Sum(w => AudioDecoder.Decode(w.Bytes, AudioLimits.From(options), w.FileName).DurationSeconds);
        if (!File.Exists(vocab)) throw new FileNotFoundException($"CLIP vocabulary '{vocab}' is missing (pass --vocab FILE)", vocab);
        var captions = Enumerable.Repeat(new[] { "an audio of barbeque", "an audio of toilet", "an audio of train" }, textRepeat)
            .SelectMany(c => c).Select(MediaInput.FromText).ToList();

        Case Make(string profile, string unit, IReadOnlyList<MediaInput> inputs, double units)
        {
            var preprocessor = PreprocessorRegistry.Create(profile, profile == "imagebind-text" ? [vocab] : [], options);
            // KeepAlive: the result is observably used, so the JIT cannot drop the work.
            return new Case(profile, unit, units, inputs.Count, () =>
            {
                foreach (var input in inputs) GC.KeepAlive(preprocessor.Process(input));
            });
        }

        return
        [
            Make("imagebind-vision", "images", jpegs, jpegs.Count),
            Make("internvl-vision", "images", jpegs, jpegs.Count),
            Make("imagebind-audio", "audio seconds", wavs, audioSeconds),
            Make("clap-fusion", "audio seconds", wavs, audioSeconds),
            Make("clap", "audio seconds", wavs, audioSeconds),
            Make("imagebind-text", "texts", captions, captions.Count),
        ];
    }

    private static PythonReport RunPython(string python, string script, string media, string vocab, double seconds, int textRepeat)
    {
        // One core: torch's intra-op pool is set to 1 by the script; keep BLAS/OpenMP pools at 1 too.
        using var json = PythonScript.RunJson(python,
            [script, "--media", media, "--vocab", vocab, "--seconds", seconds.ToString(CultureInfo.InvariantCulture),
             "--text-repeat", textRepeat.ToString(CultureInfo.InvariantCulture)],
            new Dictionary<string, string?> { ["OMP_NUM_THREADS"] = "1", ["OPENBLAS_NUM_THREADS"] = "1", ["MKL_NUM_THREADS"] = "1" });
        var root = json.RootElement;
        var threads = root.GetProperty("torch_threads").GetInt32();
        if (threads != 1) throw new InvalidOperationException($"the reference ran with {threads} torch threads, not 1");
        var versions = $"Python {root.GetProperty("python").GetString()}, torch {root.GetProperty("torch").GetString()}, " +
                       $"torchaudio {root.GetProperty("torchaudio").GetString()}, Pillow {root.GetProperty("pillow").GetString()}, " +
                       $"NumPy {root.GetProperty("numpy").GetString()}; torch threads {threads}";
        var results = root.GetProperty("results").EnumerateArray().ToDictionary(
            r => r.GetProperty("case").GetString()!,
            r => (r.GetProperty("units_per_call").GetDouble(), r.GetProperty("median_s").GetDouble(), r.GetProperty("iterations").GetInt32()));
        foreach (var (name, r) in results) Log($"    {name}: {r.Item1 / r.Item2:F1} per s ({r.Item3} calls)");
        return new PythonReport(versions, results);
    }

    private static string Report(string command, Machine machine, List<Case> cases, List<IReadOnlyList<Timing>> csharp,
        List<PythonReport> python, int warmup, double seconds, int textRepeat)
    {
        var inv = CultureInfo.InvariantCulture;
        string F(double v, string f = "F1") => v.ToString(f, inv);
        var s = new StringBuilder();
        s.AppendLine("## Preprocessing throughput per core (C# vs the Python reference)").AppendLine();
        s.AppendLine("```").AppendLine(command).AppendLine("```").AppendLine();
        s.AppendLine($"- Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {machine.Model} ({machine.VendorFamily}), {machine.Cores} cores, " +
                     $"AVX-512 {(machine.Avx512 ? "yes" : "no")}; load average {machine.LoadAverage} (a shared machine: absolute figures move with its load).");
        s.AppendLine($"- C#: .NET {Environment.Version}, one thread, the registered `IPreprocessor.Process` of each profile on bytes in memory " +
                     $"(decoding and resampling included); ≥ {warmup} untimed `Process` calls per profile and a pause for background tier-1 JIT, " +
                     $"then the cases round-robin, median of ≥ 5 calls and ≥ {F(seconds)} s each.");
        s.AppendLine(python.Count == 0
            ? "- Python reference: not run (`--no-python`)."
            : $"- Python reference: `tools/reference/bench_preprocess.py` as a subprocess, {python[0].Versions}; OMP/OpenBLAS/MKL threads 1; " +
              "the reference recipes of `preprocess_image_text.py` / `preprocess_audio.py` (imported), same inputs, same timing rule " +
              "(CLIP BPE given upstream's per-word cache, which the C# encoder has too).");
        s.AppendLine($"- The sides take turns ({(python.Count == 0 ? "C# only" : "reference, C#, reference, C#")}), each alone on the machine; " +
                     "per case each side's faster run counts, so a burst of outside load in one run does not decide the ratio.");
        s.AppendLine($"- Inputs: BBQ.jpeg (1440×810), toilet.jpeg and train.jpeg (1920×1080) → 3 images per call; BBQ/toilet/train.wav (PCM16 mono 32 kHz, 10 s) → " +
                     $"{F(cases.First(c => c.Unit == "audio seconds").UnitsPerCall, "F0")} audio seconds per call (ImageBind resamples to 16 kHz, CLAP to 48 kHz); " +
                     $"the 3 captions × {textRepeat} per text call.");
        s.AppendLine();
        s.AppendLine("| profile | unit | C# per s | C# ms per call | reference per s | reference ms per call | C# / reference | goal ≥ 1.0× |");
        s.AppendLine("|---|---|---:|---:|---:|---:|---:|---|");
        var ratios = new List<(string Profile, double Ratio)>();
        foreach (var c in cases)
        {
            var mine = csharp.Select(t => t.Single(x => x.Case == c.Profile).MedianSeconds).Min();
            var reference = python.Where(p => p.Results.ContainsKey(c.Profile)).Select(p => p.Results[c.Profile]).ToList();
            if (reference.Any(r => Math.Abs(r.UnitsPerCall - c.UnitsPerCall) > 1e-6 * c.UnitsPerCall))
                throw new InvalidOperationException($"{c.Profile}: the reference processed a different amount of {c.Unit} per call than C# ({c.UnitsPerCall})");
            double? theirs = reference.Count > 0 ? reference.Min(r => r.MedianSeconds) : null;
            double? ratio = theirs is { } th ? th / mine : null;
            if (ratio is { } q) ratios.Add((c.Profile, q));
            s.AppendLine($"| `{c.Profile}` | {c.Unit} | {F(c.UnitsPerCall / mine)} | {F(mine * 1e3, "F2")} | " +
                         $"{(theirs is { } x ? F(c.UnitsPerCall / x) : "—")} | {(theirs is { } y ? F(y * 1e3, "F2") : "—")} | " +
                         $"{(ratio is { } z ? F(z, "F2") + "×" : "—")} | {(ratio is null ? "—" : ratio >= Goal ? "met" : "**missed**")} |");
        }
        if (ratios.Count > 0)
        {
            s.AppendLine();
            var missed = ratios.Where(r => r.Ratio < Goal).ToList();
            s.AppendLine(missed.Count == 0
                ? $"Goal ≥ {F(Goal)}× the reference: met by every profile (lowest {ratios.MinBy(r => r.Ratio).Profile} {F(ratios.Min(r => r.Ratio), "F2")}×)."
                : $"Goal ≥ {F(Goal)}× the reference: missed by {string.Join(", ", missed.Select(m => $"{m.Profile} ({F(m.Ratio, "F2")}×)"))}.");
        }
        s.AppendLine();
        s.AppendLine("Every run, per s (C# runs; reference runs): " + string.Join("; ", cases.Select(c =>
            $"{c.Profile} {string.Join(" / ", csharp.Select(t => F(c.UnitsPerCall / t.Single(x => x.Case == c.Profile).MedianSeconds)))}; " +
            string.Join(" / ", python.Select(p => p.Results.TryGetValue(c.Profile, out var r) ? F(r.UnitsPerCall / r.MedianSeconds) : "—")))) + ".");
        return s.ToString();
    }

    private static void Log(string message) => Console.Error.WriteLine(message);

    private static string? RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FreeBind.Pipeline.sln"))) return dir.FullName;
        return null;
    }
}
