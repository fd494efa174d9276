using System.Globalization;
using System.Text;
using FreeBind.Encoding.Spaces;

namespace FreeBind.Benchmarks;

/// <summary>
/// The <c>space-load</c> benchmark (issue 9, "a backfill machine needs no encoders"): what naming a
/// space version costs at the start of a process, before and after the digest cache and the
/// fusion-only load, on one model root. Each case starts from a fresh <see cref="FileDigestCache"/>
/// instance (a new process: nothing in memory); "warm" means its folder holds the entries an
/// earlier process recorded. Reported with the bytes each case read, which is what real exports
/// (gigabytes per encoder) pay.
/// </summary>
internal static class SpaceLoadBenchmark
{
    private const string Usage = """
        usage: dotnet run -c Release --project bench/FreeBind.Benchmarks -- space-load --models DIR [options]

          --models DIR        model root with the space's files (the stand-in models: .work/testdata/models)
          --space NAME        manifest in spaces/, default internvl-ib-ft++ (the one with the most files)
          --seconds S         timed seconds per case, default 3
          --docs PATH         markdown file to update (default: docs/benchmarks.md of the repository)
          --no-docs           print only
        """;

    /// <summary>Entry point of the subcommand; <paramref name="args"/> excludes the word <c>space-load</c>.</summary>
    public static int RunCommand(string[] args)
    {
        string? models = null, docs = null;
        var space = "internvl-ib-ft++";
        var seconds = 3.0;
        var writeDocs = true;
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--models": models = Value(); break;
                case "--space": space = Value(); break;
                case "--seconds": seconds = double.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--docs": docs = Value(); break;
                case "--no-docs": writeDocs = false; break;
                default:
                    Console.Error.WriteLine($"unknown option {args[i]}\n{Usage}");
                    return 2;
            }
        }
        var root = RepositoryRoot() ?? throw new InvalidOperationException("repository root not found; run from the checkout");
        if (models is null)
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }
        var report = Run(Path.GetFullPath(models), Path.Combine(root, "spaces", space + ".json"), seconds,
            "dotnet run -c Release --project bench/FreeBind.Benchmarks -- space-load " + string.Join(' ', args));
        Console.WriteLine(report);
        if (writeDocs)
        {
            docs ??= Path.Combine(root, "docs", "benchmarks.md");
            BenchmarkDocs.WriteSection(docs, "space-load", report);
            Console.Error.WriteLine($"updated {docs}");
        }
        return 0;
    }

    private sealed record Case(string Name, string What, Func<string?, (string Version, long Hashed, long ReadWhole)> Load, bool Warm);

    private static string Run(string models, string manifestPath, double seconds, string command)
    {
        var cacheDir = Directory.CreateTempSubdirectory("freebind-bench-digests-").FullName;
        try
        {
            var manifest = SpaceLoader.ReadManifest(manifestPath);
            var files = SpaceLoader.ReferencedFiles(manifest);
            var projectorFiles = manifest.ProjectorSets.Values.SelectMany(s => s.Files).ToHashSet(StringComparer.Ordinal);
            long Size(IEnumerable<string> set) => set.Sum(f => new FileInfo(Path.Combine(models, f)).Length);
            var onnx = files.Where(f => f.EndsWith(".onnx", StringComparison.Ordinal)).ToList();
            var stored = SpaceLoader.Build(manifest, models).ToJson().ToJsonString();

            var cases = new List<Case>
            {
                new("before", "every file hashed, every ONNX file read whole for its signature: each start before this change (emulated: today's hashing, plus the whole-file read the old signature reader did)", _ =>
                {
                    var cache = new FileDigestCache();
                    var version = SpaceLoader.Build(manifest, models, new SpaceLoadOptions { Digests = cache }).Version;
                    long whole = 0;
                    foreach (var f in onnx) whole += File.ReadAllBytes(Path.Combine(models, f)).Length; // the old LoadSignature
                    return (version, cache.BytesHashed, whole);
                }, Warm: false),
                new("embed, cold cache", "every file hashed once, signatures memory-mapped (a new file or a first start)", _ =>
                {
                    var cache = new FileDigestCache();
                    return (SpaceLoader.Build(manifest, models, new SpaceLoadOptions { Digests = cache }).Version, cache.BytesHashed, 0);
                }, Warm: false),
                new("embed, warm cache", "digests from the cache of an earlier process: nothing hashed", dir =>
                {
                    var cache = new FileDigestCache(dir);
                    return (SpaceLoader.Build(manifest, models, new SpaceLoadOptions { Digests = cache }).Version, cache.BytesHashed, 0);
                }, Warm: true),
                new("fuse, warm cache", "fusion-only load: projector files checked, encoders' digests from the cache", dir =>
                {
                    var cache = new FileDigestCache(dir);
                    return (SpaceLoader.Build(manifest, models, new SpaceLoadOptions { Digests = cache, Use = SpaceUse.Fuse }).Version, cache.BytesHashed, 0);
                }, Warm: true),
                new("stored version, cold cache", "LoadStored on a backfill machine's first start: only the projector files hashed", _ =>
                {
                    var cache = new FileDigestCache();
                    return (SpaceLoader.LoadStored(stored, models, cache).Version, cache.BytesHashed, 0);
                }, Warm: false),
                new("stored version, warm cache", "LoadStored afterwards: nothing hashed, no encoder file opened", dir =>
                {
                    var cache = new FileDigestCache(dir);
                    return (SpaceLoader.LoadStored(stored, models, cache).Version, cache.BytesHashed, 0);
                }, Warm: true),
            };

            // Record the entries a warm start finds (the files must be older than the racy window).
            var oldest = files.Max(f => File.GetLastWriteTimeUtc(Path.Combine(models, f)));
            var wait = oldest + FileDigestCache.RacyWindow + TimeSpan.FromMilliseconds(200) - DateTime.UtcNow;
            if (wait > TimeSpan.Zero) Thread.Sleep(wait);
            var primer = new FileDigestCache(cacheDir);
            SpaceLoader.Build(manifest, models, new SpaceLoadOptions { Digests = primer });

            var bytes = cases.ToDictionary(c => c.Name, c => c.Load(c.Warm ? cacheDir : null));
            if (bytes.Values.Select(b => b.Version).Distinct().Count() != 1)
                throw new InvalidOperationException("the cases named different versions: " + string.Join(", ", bytes.Select(kv => $"{kv.Key}={kv.Value.Version}")));
            var timings = Timer.Interleaved(1, [.. cases.Select(c => new TimedCase(c.Name, () => c.Load(c.Warm ? cacheDir : null)))], seconds, minIterations: 5);
            var baseline = timings[0].MedianSeconds;

            var inv = CultureInfo.InvariantCulture;
            var sb = new StringBuilder();
            sb.Append(inv, $"## Space load: naming a version at start ({manifest.Name}, stand-in models)\n\n");
            sb.Append(inv, $"Command: `{command}`  \n");
            var machine = Machine.Describe();
            sb.Append(inv, $"Machine: {machine.Model}, {machine.Cores} cores, load {machine.LoadAverage}; {DateTime.UtcNow:yyyy-MM-dd}  \n");
            sb.Append(inv, $"Model root: {files.Count} files, {Mb(Size(files))} (projectors {Mb(Size(files.Where(projectorFiles.Contains)))} in {projectorFiles.Count} files; " +
                           $"encoders and tokenizers {Mb(Size(files.Where(f => !projectorFiles.Contains(f))))}). Page cache warm in every case: times are CPU (SHA-256, parsing) on a shared, loaded machine (see load), so compare ratios, not milliseconds; the bytes columns are what a cold disk would read.\n\n");
            sb.Append("| case | what | ms per start | vs before | bytes hashed | bytes read whole for signatures |\n| --- | --- | ---: | ---: | ---: | ---: |\n");
            foreach (var (c, t) in cases.Zip(timings))
                sb.Append(inv, $"| {c.Name} | {c.What} | {t.MedianSeconds * 1000:F1} | {(c == cases[0] ? "baseline" : $"{baseline / t.MedianSeconds:F1}× faster")} | {bytes[c.Name].Hashed:N0} | {bytes[c.Name].ReadWhole:N0} |\n");
            sb.Append(inv, $"\nEvery case named the same version, {bytes["before"].Version[..19]}… (checked; the stored document is {stored.Length:N0} bytes). ");
            sb.Append("On real exports the encoders dominate. A version must cover the weights (issue 10, pitfall 1), so every weight file is read once to hash it: " +
                      "ImageBind-huge's vision encoder alone is 2.36 GiB, and InternVL-C's two are 22.1 and 24.9 GiB in float32 (docs/export.md, \"Disk, memory and time\": " +
                      "the first measured there on a full-size export, the others from InternVL-C's parameter counts). " +
                      "Without the cache every start would read that again (and, before, every encoder under 2 GB a second time, whole, for its signature); " +
                      "with it an unchanged file is read zero times, and a fusion-only load from the stored version never opens an encoder: a backfill machine's first start reads " +
                      $"the projector files ({Mb(Size(files.Where(projectorFiles.Contains)))} here, the same sizes as the real ones) and later starts nothing.\n");
            return sb.ToString();
        }
        finally
        {
            Directory.Delete(cacheDir, recursive: true);
        }
    }

    private static string? RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FreeBind.Pipeline.sln"))) return dir.FullName;
        return null;
    }

    private static string Mb(long bytes) => (bytes / 1048576.0).ToString("F1", CultureInfo.InvariantCulture) + " MiB";
}
