using System.Diagnostics;
using System.Globalization;
using System.Text;
using FreeBind.Benchmarks.Ingestion;
using FreeBind.Consumers.Ingestion;
using FreeBind.Persistence.Embeddings;

namespace FreeBind.Benchmarks;

/// <summary>
/// The <c>ingestion</c> benchmark (issue 4, Speed): events/s of the worker end to end with the
/// generated tiny encoders, against (a) raw binary COPY of the same vectors (the ceiling) and (b) a
/// naive per-message insert-and-commit consumer, all in one run, each case in a fresh database;
/// plus per-item latency of a cache miss and a cache hit. Cases repeat in rounds (e2e, ceilings,
/// naive, e2e, …) and medians are reported, because the machine is shared.
/// </summary>
internal static class IngestionBenchmark
{
    private const string Usage = """
        usage: dotnet run -c Release --project bench/FreeBind.Benchmarks -- ingestion [options]

          --events N          timed events per end-to-end case, default 3000
          --warmup N          untimed events first (sessions, JIT, space table), default 300
          --rounds R          rounds of (end to end, ceilings, naive), default 3
          --naive-seconds S   timed seconds of the naive consumer per round (it stops earlier after N), default 5
          --cache-items N     items for the miss/hit latency, default 200
          --set KEY=VALUE     worker setting for every end-to-end case (configuration key, e.g. Ingestion:WriteBatch=512)
          --variant NAME:K=V[,K=V…]  an extra end-to-end case with these settings (repeatable)
          --no-investigate    skip the built-in variants (deeper in-flight window, smaller write batches, one write lane, one ORT thread, ORT spinning on)
          --images N          also time N image events (file:// URIs), 0 to skip, default 300
          --media DIR         BBQ/toilet/train .jpeg (default: $FREEBIND_SHARED or ../shared, media/freebind-samples)
          --no-hits           skip the all-cache-hits end-to-end phase
          --docs PATH         markdown file to update (default: docs/benchmarks.md of the repository)
          --no-docs           print only
        """;

    private const double CeilingGoal = 0.5;
    private const double NaiveGoal = 10;

    private sealed record Options(int Events, int Warmup, int Rounds, double NaiveSeconds, int CacheItems,
        Dictionary<string, string?> Settings, List<(string Name, Dictionary<string, string?> Settings)> Variants,
        int Images, string Media, bool Hits);

    // Settings that bear on where the time goes, tried by configuration only, every round.
    private static readonly (string Name, Dictionary<string, string?> Settings)[] Investigation =
    [
        ("in flight 4096", new() { ["Ingestion:MaxInFlight"] = "4096", ["Ingestion:ResumeInFlight"] = "3072" }),
        ("write batch 512", new() { ["Ingestion:WriteBatch"] = "512" }),
        ("1 write lane", new() { ["Ingestion:WriteLanes"] = "1" }),
        ("1 ORT thread", new() { ["Onnx:IntraOpThreads"] = "1" }),
        ("ORT spinning on", new() { ["Onnx:AllowSpinning"] = "true" }),
    ];

    /// <summary>Entry point of the subcommand; <paramref name="args"/> excludes the word <c>ingestion</c>.</summary>
    public static int RunCommand(string[] args)
    {
        var root = RepositoryRoot();
        var shared = Environment.GetEnvironmentVariable("FREEBIND_SHARED") is { Length: > 0 } s
            ? s : Path.GetFullPath(Path.Combine(root ?? ".", "..", "shared"));
        var o = new Options(3000, 300, 3, 5, 200, [], [], 300, Path.Combine(shared, "media", "freebind-samples"), true);
        string? docs = null;
        var writeDocs = true;
        var investigate = true;
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Int() => int.Parse(Value(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--events": o = o with { Events = Int() }; break;
                case "--warmup": o = o with { Warmup = Int() }; break;
                case "--rounds": o = o with { Rounds = Int() }; break;
                case "--naive-seconds": o = o with { NaiveSeconds = double.Parse(Value(), CultureInfo.InvariantCulture) }; break;
                case "--cache-items": o = o with { CacheItems = Int() }; break;
                case "--set":
                    var (k, v) = KeyValue(Value());
                    o.Settings[k] = v;
                    break;
                case "--variant":
                    var spec = Value();
                    var colon = spec.IndexOf(':', StringComparison.Ordinal);
                    var eq = spec.IndexOf('=', StringComparison.Ordinal);
                    if (colon <= 0 || (eq >= 0 && eq < colon)) throw new ArgumentException($"--variant {spec}: expected NAME:KEY=VALUE[,KEY=VALUE…]");
                    o.Variants.Add((spec[..colon], spec[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries).Select(KeyValue)
                        .ToDictionary(x => x.Key, x => (string?)x.Value)));
                    break;
                case "--images": o = o with { Images = Int() }; break;
                case "--media": o = o with { Media = Value() }; break;
                case "--no-hits": o = o with { Hits = false }; break;
                case "--no-investigate": investigate = false; break;
                case "--docs": docs = Value(); break;
                case "--no-docs": writeDocs = false; break;
                default:
                    Console.Error.WriteLine($"unknown option {args[i]}\n{Usage}");
                    return 2;
            }
        }
        if (investigate) o.Variants.InsertRange(0, Investigation.Select(v => (v.Name, new Dictionary<string, string?>(v.Settings))));
        if (root is null)
        {
            Console.Error.WriteLine("repository root not found (FreeBind.Pipeline.sln): run from inside the repository");
            return 2;
        }
        var postgres = Environment.GetEnvironmentVariable("FREEBIND_PG");
        var redis = Environment.GetEnvironmentVariable("FREEBIND_REDIS");
        if (string.IsNullOrWhiteSpace(postgres) || string.IsNullOrWhiteSpace(redis))
        {
            Console.Error.WriteLine("FREEBIND_PG and FREEBIND_REDIS are not set: scripts/services.sh start && eval \"$(scripts/services.sh env)\"");
            return 2;
        }
        var command = "dotnet run -c Release --project bench/FreeBind.Benchmarks -- ingestion" + (args.Length > 0 ? " " + string.Join(' ', args) : "");
        var report = RunAsync(o, root, postgres, redis, command).GetAwaiter().GetResult();
        Console.WriteLine(report);
        if (writeDocs)
        {
            docs ??= Path.Combine(root, "docs", "benchmarks.md");
            BenchmarkDocs.WriteSection(docs, "ingestion", report);
            Console.Error.WriteLine($"updated {docs}");
        }
        return 0;
    }

    private static int WriteBatch(Dictionary<string, string?> settings) =>
        settings.TryGetValue("Ingestion:WriteBatch", out var v) && v is not null ? int.Parse(v, CultureInfo.InvariantCulture) : new IngestionOptions().WriteBatch;

    private static (string Key, string Value) KeyValue(string s)
    {
        var eq = s.IndexOf('=', StringComparison.Ordinal);
        return eq > 0 ? (s[..eq], s[(eq + 1)..]) : throw new ArgumentException($"'{s}': expected KEY=VALUE");
    }

    private sealed class Results
    {
        public List<EndToEndResult> EndToEnd { get; } = [];
        public Dictionary<string, List<EndToEndResult>> Variants { get; } = [];
        public List<double> CeilingIndexed { get; } = [];
        public List<double> CeilingBare { get; } = [];
        public List<double> CeilingParity { get; } = [];
        public List<double> StoreCopyMerge { get; } = [];
        public List<double> StoreUnnest { get; } = [];
        public List<NaiveResult> Naive { get; } = [];
        public List<EndToEndResult> Images { get; } = [];
        public (double[] Miss, double[] Hit) Cache { get; set; }
        public (double[] Miss, double[] Hit) CacheNoWait { get; set; }
    }

    private static async Task<string> RunAsync(Options o, string root, string postgres, string redis, string command)
    {
        var machine = Machine.Describe();
        var started = DateTime.UtcNow;
        var total = Stopwatch.StartNew();
        Log($"machine: {machine.Model}, {machine.Cores} cores, load {machine.LoadAverage}");
        using var ctx = new BenchContext(root, postgres, redis, "imagebind");
        Log($"run {ctx.RunId}: mock Kafka at {ctx.Cluster.BootstrapServers}, {BenchContext.Partitions} partitions per topic");
        var r = new Results();
        string? imageDir = null;
        EventMaker? images = null;
        if (o.Images > 0) (imageDir, images) = ImageEvents(o.Media, ctx.RunId);
        try
        {
            // The first worker of the process pays for JIT tiering; this one is not reported.
            Log("process warm-up (untimed end-to-end case) …");
            await EndToEndCase.RunAsync(ctx, "process warm-up", o.Settings, o.Warmup, Math.Min(o.Events, 1000), hits: false, keepRows: false);
            var endToEnd = new List<(string Name, Dictionary<string, string?> Settings)> { ("default", o.Settings) };
            endToEnd.AddRange(o.Variants.Select(v =>
            {
                var merged = new Dictionary<string, string?>(o.Settings);
                foreach (var (k, val) in v.Settings) merged[k] = val;
                return (v.Name, merged);
            }));
            for (var round = 1; round <= o.Rounds; round++)
            {
                Log($"round {round}/{o.Rounds}");
                // End-to-end cases rotate their order every round, so none always runs first or last.
                WrittenRows? rows = null;
                for (var i = 0; i < endToEnd.Count; i++)
                {
                    var (name, settings) = endToEnd[(i + round - 1) % endToEnd.Count];
                    var isDefault = name == "default";
                    var result = await EndToEndCase.RunAsync(ctx, name, settings, o.Warmup, o.Events, isDefault && o.Hits, keepRows: isDefault);
                    if (isDefault)
                    {
                        r.EndToEnd.Add(result);
                        rows = result.Rows;
                        Log($"  end to end: {result.Miss.EventsPerSecond:F0} events/s (misses)" +
                            (result.Hit is { } h ? $", {h.EventsPerSecond:F0} events/s (hits)" : "") + $"; start + warm-up {result.StartSeconds:F1} s");
                    }
                    else
                    {
                        (r.Variants.TryGetValue(name, out var list) ? list : r.Variants[name] = []).Add(result);
                        Log($"  variant {name}: {result.Miss.EventsPerSecond:F0} events/s");
                    }
                }
                r.CeilingIndexed.Add(await CopyCeiling.EmbeddingsOnlyAsync(ctx, rows!, index: true));
                r.CeilingParity.Add(await CopyCeiling.ParityAsync(ctx, rows!));
                r.CeilingBare.Add(await CopyCeiling.EmbeddingsOnlyAsync(ctx, rows!, index: false));
                Log($"  COPY ceiling: {r.CeilingIndexed[^1]:F0} rows/s (same table, HNSW), {r.CeilingParity[^1]:F0} (media+embeddings+atoms), {r.CeilingBare[^1]:F0} (no index)");
                r.StoreCopyMerge.Add(await StoreOnly.RunAsync(ctx, rows!, copyMerge: true, WriteBatch(o.Settings)));
                r.StoreUnnest.Add(await StoreOnly.RunAsync(ctx, rows!, copyMerge: false, WriteBatch(o.Settings)));
                Log($"  store only: {r.StoreCopyMerge[^1]:F0} items/s (CopyMerge), {r.StoreUnnest[^1]:F0} (Unnest)");
                var naive = await NaiveConsumer.RunAsync(ctx, Math.Min(50, o.Warmup), o.Events, o.NaiveSeconds);
                r.Naive.Add(naive);
                Log($"  naive: {naive.Events / naive.Seconds:F1} events/s ({naive.Events} in {naive.Seconds:F1} s; ms per message: consume {naive.ConsumeMs:F2}, parse+embed {naive.EmbedMs:F2}, Postgres {naive.WriteMs:F2}, offset commit {naive.CommitMs:F2})");
                if (images is not null && round == 1)
                {
                    var img = await EndToEndCase.RunAsync(ctx, "images",
                        new Dictionary<string, string?>(o.Settings) { ["Content:AllowedFileRoots:0"] = imageDir },
                        Math.Max(10, o.Images / 10), o.Images, hits: false, keepRows: false, images);
                    r.Images.Add(img);
                    Log($"  images end to end: {img.Miss.EventsPerSecond:F1} events/s");
                }
            }
            Log("cache latency …");
            r.Cache = await CacheLatency.RunAsync(ctx, o.CacheItems, warmup: 20, o.Settings);
            r.CacheNoWait = await CacheLatency.RunAsync(ctx, o.CacheItems, warmup: 20,
                new Dictionary<string, string?>(o.Settings) { ["Onnx:MaxWaitMs"] = "0" });
        }
        finally
        {
            if (imageDir is not null) Directory.Delete(imageDir, recursive: true);
        }
        Log($"done in {total.Elapsed.TotalSeconds:F0} s");
        return Report(o, command, machine with { LoadAverage = $"{machine.LoadAverage} → {Machine.LoadAverageNow()}" }, started, total.Elapsed, r);
    }

    /// <summary>
    /// Distinct images without an image encoder: copies of the three sample JPEGs, each with a few
    /// unique bytes after its end-of-image marker (decoders stop there), so every copy has its own
    /// SHA-256 and misses the cache. The same copy index gives the same bytes.
    /// </summary>
    private static (string Dir, EventMaker Make) ImageEvents(string media, string runId)
    {
        var names = new[] { "BBQ", "toilet", "train" };
        var originals = names.Select(n =>
        {
            var path = Path.Combine(media, n + ".jpeg");
            return File.Exists(path) ? File.ReadAllBytes(path) : throw new FileNotFoundException($"sample '{path}' is missing (pass --media DIR, or --images 0)", path);
        }).ToArray();
        var dir = Directory.CreateTempSubdirectory("freebind-bench-images-").FullName;
        return (dir, (prefix, first, count) => [.. Enumerable.Range(0, count).Select(i =>
        {
            var n = first + i;
            var file = Path.Combine(dir, $"{names[n % 3]}-{n:D6}.jpeg");
            if (!File.Exists(file))
                File.WriteAllBytes(file, [.. originals[n % 3], .. System.Text.Encoding.ASCII.GetBytes($"freebind-bench {runId} {n}")]);
            var id = $"{prefix}-{i:D6}";
            return (id, BenchContext.FileEvent(id, "image", new Uri(file)));
        })]);
    }

    private static string Report(Options o, string command, Machine machine, DateTime started, TimeSpan elapsed, Results r)
    {
        var e2e = Median(r.EndToEnd.Select(x => x.Miss.EventsPerSecond));
        var hits = r.EndToEnd.All(x => x.Hit is not null) && r.EndToEnd.Count > 0 ? Median(r.EndToEnd.Select(x => x.Hit!.EventsPerSecond)) : (double?)null;
        var indexed = Median(r.CeilingIndexed);
        var parity = Median(r.CeilingParity);
        var bare = Median(r.CeilingBare);
        var naive = Median(r.Naive.Select(n => n.Events / n.Seconds));
        string Runs(IEnumerable<double> values, string format = "F0") => string.Join(", ", values.Select(v => v.ToString(format, CultureInfo.InvariantCulture)));
        string Goal(double ratio, double goal) => ratio >= goal ? "met" : "**missed**";

        var sb = new StringBuilder();
        sb.AppendLine("## Ingestion throughput (end to end vs COPY ceiling vs naive consumer)");
        sb.AppendLine();
        sb.AppendLine("```");
        sb.AppendLine(command);
        sb.AppendLine("```");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Run {started:yyyy-MM-dd HH:mm} UTC ({elapsed.TotalSeconds:F0} s) on {machine.Model} ({machine.VendorFamily}), {machine.Cores} cores; load average {machine.LoadAverage} (a shared machine: absolute figures move with its load; each case ran {o.Rounds}× in rounds, medians below).");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Space `imagebind` (the generated tiny encoders, CPU), text events (distinct captions, new to Redis: every timed item is a cache miss), librdkafka's mock cluster in-process ({BenchContext.Partitions} partitions), Postgres and Redis from `scripts/services.sh`; every case in its own fresh database.");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- **End to end**: `IngestionWorker` hosted in-process as `freebind run` composes it, worker defaults{(o.Settings.Count > 0 ? " except " + string.Join(", ", o.Settings.Select(kv => $"`{kv.Key}={kv.Value}`")) : "")}. {o.Warmup} warm-up events are made durable first (sessions loaded, JIT warm, space table and HNSW index created); then {o.Events} timed events are produced and the clock runs from the first produce call until the worker reports all of them durable (rows committed, offsets stored). The worker writes media, embedding and atom rows per item (arrays expanded with `unnest`, in `Ingestion:WriteLanes` concurrent transactions) and publishes one output event per item.");
        sb.AppendLine("- **(a) COPY ceiling**: the timed rows read back from the worker's database, loaded by Npgsql binary COPY (`BeginBinaryImport`) in one transaction into an empty table in a fresh database; rows/s from `BEGIN` to `COMMIT`. Primary: the same vectors into a table of the space table's shape (`media_id text PRIMARY KEY, embedding vector(1024), updated_at`) **with its HNSW cosine index** (what the worker's table has), no media rows. Also shown: parity (media + embeddings + atoms COPYed into the migrated schema and the space version's own table, FK and HNSW included), and the same table without an index.");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- **(b) naive consumer**: one message at a time: `Consume`, `MediaEventParser.Parse`, the same `Embedder` on one item (`Onnx:MaxWaitMs=0`: it has nothing to batch with), one round trip of three INSERT … ON CONFLICT statements (media, embedding, atom) in one implicit transaction, then a synchronous `Commit` of the offset. Timed for up to {o.NaiveSeconds:F0} s per round after {Math.Min(50, o.Warmup)} warm-up messages.");
        sb.AppendLine();
        sb.AppendLine("| case | per s (median) | every round | end to end ÷ case | goal |");
        sb.AppendLine("|---|---:|---|---:|---|");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| end to end, cache misses | {e2e:F0} events | {Runs(r.EndToEnd.Select(x => x.Miss.EventsPerSecond))} | | |");
        if (hits is { } hv)
            sb.AppendLine(CultureInfo.InvariantCulture, $"| end to end, cache hits (same texts, new ids) | {hv:F0} events | {Runs(r.EndToEnd.Select(x => x.Hit!.EventsPerSecond))} | | |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| (a) COPY, same table shape + HNSW (ceiling) | {indexed:F0} rows | {Runs(r.CeilingIndexed)} | **{e2e / indexed:F2}×** | ≥ {CeilingGoal}×: {Goal(e2e / indexed, CeilingGoal)} |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| (a′) COPY, media + embeddings + atoms (parity) | {parity:F0} items | {Runs(r.CeilingParity)} | {e2e / parity:F2}× | ≥ {CeilingGoal}×: {Goal(e2e / parity, CeilingGoal)} |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| (a″) COPY, same table, no index | {bare:F0} rows | {Runs(r.CeilingBare)} | {e2e / bare:F2}× | (not the goal) |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| (c) COPY into staging + merge (bench-only `CopyMergeWriter`), batches of {WriteBatch(o.Settings)} | {Median(r.StoreCopyMerge):F0} items | {Runs(r.StoreCopyMerge)} | {e2e / Median(r.StoreCopyMerge):F2}× | (diagnostic) |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| (c′) `EmbeddingStore` alone (unnest), batches of {WriteBatch(o.Settings)} | {Median(r.StoreUnnest):F0} items | {Runs(r.StoreUnnest)} | {e2e / Median(r.StoreUnnest):F2}× | (diagnostic) |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| (b) naive per-message consumer | {naive:F1} events | {Runs(r.Naive.Select(n => n.Events / n.Seconds), "F1")} | **{e2e / naive:F1}×** | ≥ {NaiveGoal}×: {Goal(e2e / naive, NaiveGoal)} |");
        sb.AppendLine();
        sb.AppendLine(BestConfiguration(r, e2e, indexed, parity, naive));
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"For scale: the COPY ceiling (a) is {indexed / naive:F1}× the naive consumer, so on this setup ≥ {NaiveGoal}× naive {(indexed / naive < NaiveGoal ? "would mean beating raw COPY" : $"needs at least {NaiveGoal * naive / indexed:F2}× the ceiling")}. Naive, ms per message (median round): consume {Median(r.Naive.Select(n => n.ConsumeMs)):F2}, parse + embed {Median(r.Naive.Select(n => n.EmbedMs)):F2}, Postgres {Median(r.Naive.Select(n => n.WriteMs)):F2}, offset commit {Median(r.Naive.Select(n => n.CommitMs)):F2}.");
        foreach (var img in r.Images)
        {
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"Image events (round 1 only): {img.Miss.Events} distinct JPEGs by `file://` URI (copies of BBQ/toilet/train.jpeg, 1440×810 and 1920×1080, with unique bytes after the end-of-image marker so each has its own digest), same worker settings: **{img.Miss.EventsPerSecond:F1} events/s** end to end (fetch, JPEG decode and resize in C#, vision encoder, write).");
        }
        sb.AppendLine();

        sb.AppendLine("Where the end-to-end time goes (timed phases, medians over rounds; write figures from the worker's `freebind.ingestion.write.*` instruments, encoder runs from `freebind.encoder.*`):");
        sb.AppendLine();
        sb.AppendLine("| case | events/s | every round | cache hits | write batches | items per write | ms per write | writes ÷ wall time | partition pauses | items per encoder run | worker-process CPU ms per event |");
        sb.AppendLine("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        void Phase(string name, IReadOnlyList<PhaseResult> phases)
        {
            if (phases.Count == 0) return;
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {name} | {Median(phases.Select(p => p.EventsPerSecond)):F0} | {Runs(phases.Select(p => p.EventsPerSecond))} | {Median(phases.Select(p => (double)p.CacheHits)):F0} of {phases[0].Events} | {Median(phases.Select(p => (double)p.Writes.Batches)):F0} | {Median(phases.Select(p => p.Writes.Items / (double)Math.Max(1, p.Writes.Batches))):F0} | {Median(phases.Select(p => p.Writes.Milliseconds / Math.Max(1, p.Writes.Batches))):F0} | {Median(phases.Select(p => p.Writes.Milliseconds / 1000 / p.Seconds)):P0} | {Median(phases.Select(p => (double)p.Pauses)):F0} | {(phases.All(p => p.Encoder.Batches == 0) ? "–" : Median(phases.Select(p => p.Encoder.Items / (double)Math.Max(1, p.Encoder.Batches))).ToString("F1", CultureInfo.InvariantCulture))} | {Median(phases.Select(p => p.CpuMsPerEvent)):F2} |");
        }
        Phase("default, misses", [.. r.EndToEnd.Select(x => x.Miss)]);
        if (hits is not null) Phase("default, hits", [.. r.EndToEnd.Select(x => x.Hit!)]);
        foreach (var (name, settings) in o.Variants)
            Phase($"{name} (`{string.Join(", ", settings.Select(kv => kv.Key + "=" + kv.Value))}`)", [.. r.Variants[name].Select(x => x.Miss)]);
        foreach (var img in r.Images) Phase("images", [img.Miss]);
        sb.AppendLine();

        var (miss, hit) = r.Cache;
        if (miss is { Length: > 0 })
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"Cache: per-item latency of the worker's item path (`MediaEventParser.Parse`, then `ItemPipeline.ProcessAsync`: SHA-256, Redis GET, on a miss tokenizer + encoder + Redis SET, then tags), one item at a time, {miss.Length} items after 20 untimed, each a miss (new text) followed by a hit (the same text under another id), in a fresh database with its own Redis key prefix:");
            sb.AppendLine();
            sb.AppendLine("| item | median ms | p95 ms | mean ms |");
            sb.AppendLine("|---|---:|---:|---:|");
            sb.AppendLine(CultureInfo.InvariantCulture, $"| cache miss, worker settings (`Onnx:MaxWaitMs=2`: a lone item waits 2 ms for company) | {Percentile(miss, 0.5):F2} | {Percentile(miss, 0.95):F2} | {miss.Average():F2} |");
            if (r.CacheNoWait.Miss is { Length: > 0 } m0)
                sb.AppendLine(CultureInfo.InvariantCulture, $"| cache miss, `Onnx:MaxWaitMs=0` | {Percentile(m0, 0.5):F2} | {Percentile(m0, 0.95):F2} | {m0.Average():F2} |");
            sb.AppendLine(CultureInfo.InvariantCulture, $"| cache hit, worker settings | {Percentile(hit, 0.5):F2} | {Percentile(hit, 0.95):F2} | {hit.Average():F2} |");
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"A hit takes {Percentile(hit, 0.5) / Percentile(miss, 0.5):P0} of a miss's median latency (worker settings).");
        }
        return sb.ToString();
    }

    /// <summary>
    /// The sentence that names a best configuration: only one faster than the default in every
    /// round (each round runs every case, so its rounds pair up), since a median inside the
    /// run-to-run spread names noise.
    /// </summary>
    private static string BestConfiguration(Results r, double e2e, double indexed, double parity, double naive)
    {
        var inv = CultureInfo.InvariantCulture;
        var defaults = r.EndToEnd.Select(x => x.Miss.EventsPerSecond).ToList();
        var ratios = r.Variants.Select(kv => (Name: kv.Key, Rate: Median(kv.Value.Select(x => x.Miss.EventsPerSecond)),
            Ratios: kv.Value.Zip(defaults, (v, d) => v.Miss.EventsPerSecond / d).ToList())).ToList();
        string Range(List<double> xs) => string.Create(inv, $"{xs.Min():F2}–{xs.Max():F2}×");
        var rest = string.Create(inv, $"The write path alone (c, c′) reaches {Median(r.StoreUnnest) / indexed:F2}× (the store, unnest) and {Median(r.StoreCopyMerge) / indexed:F2}× (COPY + merge) of the ceiling: one transaction at a time; the worker runs `Ingestion:WriteLanes` of them concurrently.");
        var winners = ratios.Where(v => v.Ratios.Count == defaults.Count && v.Ratios.All(x => x > 1)).ToList();
        if (winners.Count == 0)
            return string.Create(inv, $"No configuration is distinguishable from the default in this run: none was faster than it in every round (each variant's per-round ratio to the default: {string.Join("; ", ratios.Select(v => $"{v.Name}: {Range(v.Ratios)}"))}). The default's median is **{e2e / indexed:F2}×** the ceiling (a), {e2e / parity:F2}× (a′), {e2e / naive:F1}× naive. ") + rest;
        var best = winners.MaxBy(v => v.Rate);
        return string.Create(inv, $"Best end-to-end configuration in this run: **{best.Name}**, faster than the default in each of the {defaults.Count} rounds (a configuration no different from the default does so by chance once in {1 << defaults.Count}; {Range(best.Ratios)} per round{(winners.Count > 1 ? $"; also faster in every round: {string.Join(", ", winners.Where(w => w.Name != best.Name).Select(w => w.Name))}" : "")}), median {best.Rate:F0} events/s = **{best.Rate / indexed:F2}×** the ceiling (a), {best.Rate / parity:F2}× (a′), {best.Rate / naive:F1}× naive. ") + rest;
    }

    private static double Median(IEnumerable<double> values) => Percentile([.. values], 0.5);

    private static double Percentile(double[] values, double p)
    {
        if (values.Length == 0) return double.NaN;
        var sorted = values.Order().ToArray();
        var x = p * (sorted.Length - 1);
        var lo = (int)Math.Floor(x);
        var hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (x - lo);
    }

    private static void Log(string message) => Console.Error.WriteLine($"{DateTime.Now:HH:mm:ss} {message}");

    private static string? RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FreeBind.Pipeline.sln"))) return dir.FullName;
        return null;
    }
}
