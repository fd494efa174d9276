using System.Diagnostics;
using System.Globalization;
using System.Text;
using FreeBind.Benchmarks.Ingestion;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Search;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using NpgsqlTypes;

namespace FreeBind.Benchmarks;

/// <summary>
/// The <c>index-build</c> benchmark (issue 9): two ways of building a new space version's HNSW index
/// during a backfill, timed in the same run on the same vectors. (a) Rows go through the product's
/// race-safe backfill write into a table that has its index from the start (indexed as they come).
/// (b) The same writes into an unindexed table, then the product's index build (CREATE INDEX
/// CONCURRENTLY with maintenance_work_mem and parallel maintenance workers). Also (c) a plain
/// CREATE INDEX in a transaction (blocks live writes: shown for the cost of CONCURRENTLY only) and
/// (d) the build at the server's defaults. Each case runs in a fresh database, cases rotate their
/// order every round, medians are reported, and each index's recall@10 is measured as the gate does.
/// </summary>
internal static class IndexBuildBenchmark
{
    private const string Usage = """
        usage: dotnet run -c Release --project bench/FreeBind.Benchmarks -- index-build [options]

          --items N        vectors per case, default 20000
          --dim D          vector width, default 1024 (ImageBind++)
          --batch B        rows per backfill write, default 500
          --rounds R       rounds of every case, default 2
          --memory MB      maintenance_work_mem of the product's build, default 1024
          --workers W      max_parallel_maintenance_workers of the product's build, default 2
          --queries Q      recall@10 queries per index, default 100
          --docs PATH      markdown file to update (default: docs/benchmarks.md of the repository)
          --no-docs        print only
        """;

    private sealed record Options(int Items, int Dim, int Batch, int Rounds, int MemoryMb, int Workers, int Queries);

    private sealed record Case(string Name, bool IndexFirst, Func<BenchDatabase, SpaceVersion, Options, Task>? Build);

    private sealed record Result(double LoadSeconds, double IndexSeconds, double Recall)
    {
        public double Total => LoadSeconds + IndexSeconds;
    }

    /// <summary>Entry point of the subcommand; <paramref name="args"/> excludes the word <c>index-build</c>.</summary>
    public static int RunCommand(string[] args)
    {
        var o = new Options(20_000, 1024, 500, 2, 1024, 2, 100);
        string? docs = null;
        var writeDocs = true;
        for (var i = 0; i < args.Length; i++)
        {
            int Int() => i + 1 < args.Length ? int.Parse(args[++i], CultureInfo.InvariantCulture) : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--items": o = o with { Items = Int() }; break;
                case "--dim": o = o with { Dim = Int() }; break;
                case "--batch": o = o with { Batch = Int() }; break;
                case "--rounds": o = o with { Rounds = Int() }; break;
                case "--memory": o = o with { MemoryMb = Int() }; break;
                case "--workers": o = o with { Workers = Int() }; break;
                case "--queries": o = o with { Queries = Int() }; break;
                case "--docs": docs = i + 1 < args.Length ? args[++i] : throw new ArgumentException("--docs needs a value"); break;
                case "--no-docs": writeDocs = false; break;
                default:
                    Console.Error.WriteLine($"unknown option {args[i]}\n{Usage}");
                    return 2;
            }
        }
        var postgres = Environment.GetEnvironmentVariable("FREEBIND_PG");
        if (string.IsNullOrWhiteSpace(postgres))
        {
            Console.Error.WriteLine("FREEBIND_PG is not set: scripts/services.sh start && eval \"$(scripts/services.sh env)\"");
            return 2;
        }
        var command = "dotnet run -c Release --project bench/FreeBind.Benchmarks -- index-build" + (args.Length > 0 ? " " + string.Join(' ', args) : "");
        var report = RunAsync(o, postgres, command).GetAwaiter().GetResult();
        Console.WriteLine(report);
        if (writeDocs)
        {
            docs ??= Path.Combine(RepositoryRoot() ?? throw new InvalidOperationException("repository root not found; pass --docs PATH or --no-docs"), "docs", "benchmarks.md");
            BenchmarkDocs.WriteSection(docs, "index-build", report);
            Console.Error.WriteLine($"updated {docs}");
        }
        return 0;
    }

    private static async Task<string> RunAsync(Options o, string postgres, string command)
    {
        var machine = Machine.Describe();
        var started = DateTime.UtcNow;
        Log($"machine: {machine.Model}, {machine.Cores} cores, load {machine.LoadAverage}; {o.Items:N0} × {o.Dim} vectors");
        var vectors = Clustered(o.Items, o.Dim);
        Case[] cases =
        [
            new("(a) indexed as they come", IndexFirst: true, Build: null),
            new($"(b) bulk, then CREATE INDEX CONCURRENTLY ({o.MemoryMb} MB, {o.Workers} workers) — the product's build", false,
                (db, v, opt) => Builder(db, opt.MemoryMb, opt.Workers).BuildAsync(v)),
            new($"(c) bulk, then CREATE INDEX in one transaction ({o.MemoryMb} MB, {o.Workers} workers)", false,
                (db, v, opt) => PlainBuildAsync(db, v, opt.MemoryMb, opt.Workers)),
            new("(d) bulk, then CREATE INDEX CONCURRENTLY at the server defaults (64 MB, 0 workers)", false,
                (db, v, _) => Builder(db, 64, 0).BuildAsync(v)),
        ];
        var results = cases.ToDictionary(c => c.Name, _ => new List<Result>());
        for (var round = 1; round <= o.Rounds; round++)
        {
            Log($"round {round}/{o.Rounds}");
            for (var i = 0; i < cases.Length; i++)
            {
                var c = cases[(i + round - 1) % cases.Length];
                var r = await RunCaseAsync(postgres, c, vectors, o);
                results[c.Name].Add(r);
                Log($"  {c.Name}: load {r.LoadSeconds:F1} s + index {r.IndexSeconds:F1} s = {r.Total:F1} s, recall@10 {r.Recall:F3}");
            }
        }
        return Report(o, machine, started, command, cases, results);
    }

    private static async Task<Result> RunCaseAsync(string postgres, Case c, float[][] vectors, Options o)
    {
        await using var db = await BenchDatabase.CreateAsync(postgres, migrate: true);
        await CopyMediaAsync(db, vectors.Length);
        var catalog = new SpaceCatalog(db.DataSource, NullLogger<SpaceCatalog>.Instance);
        var version = await catalog.EnsureVersionAsync("bench", "sha256:bench", o.Dim, "{}", createIndex: c.IndexFirst);
        var writer = new BackfillWriter(db.DataSource, NullLogger<BackfillWriter>.Instance);

        var load = Stopwatch.StartNew();
        for (var start = 0; start < vectors.Length; start += o.Batch)
        {
            var rows = Enumerable.Range(start, Math.Min(o.Batch, vectors.Length - start))
                .Select(i => new BackfillRow(Id(i), "image", Sha(i), vectors[i], [], [])).ToList();
            var written = await writer.WriteAsync(version, rows);
            if (written.Written != rows.Count) throw new InvalidOperationException($"{c.Name}: {written.Written} of {rows.Count} rows written");
        }
        var loadSeconds = load.Elapsed.TotalSeconds;
        var index = Stopwatch.StartNew();
        if (c.Build is not null) await c.Build(db, version, o);
        var indexSeconds = index.Elapsed.TotalSeconds;

        if (!await Builder(db, 64, 0).IsValidAsync(version)) throw new InvalidOperationException($"{c.Name}: no valid index after the build");
        var verifier = new VersionVerifier(db.DataSource, new VectorSearch(db.DataSource));
        var recall = await verifier.RecallAsync(version, new VerifyOptions(RecallQueries: o.Queries));
        return new Result(loadSeconds, indexSeconds, recall.Recall ?? double.NaN);
    }

    private static SpaceIndexBuilder Builder(BenchDatabase db, int memoryMb, int workers) =>
        new(db.DataSource, Microsoft.Extensions.Options.Options.Create(new SpaceVersionOptions { IndexBuildMemoryMb = memoryMb, IndexBuildWorkers = workers }),
            NullLogger<SpaceIndexBuilder>.Instance);

    private static async Task PlainBuildAsync(BenchDatabase db, SpaceVersion v, int memoryMb, int workers)
    {
        await using var connection = await db.DataSource.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await using var cmd = new Npgsql.NpgsqlCommand($"""
            SET LOCAL maintenance_work_mem = '{memoryMb}MB';
            SET LOCAL max_parallel_maintenance_workers = {workers};
            CREATE INDEX "{v.TableName}_hnsw" ON "{v.TableName}" USING hnsw (embedding vector_cosine_ops);
            """, connection, tx) { CommandTimeout = 0 };
        await cmd.ExecuteNonQueryAsync();
        await tx.CommitAsync();
    }

    private static string Id(int i) => $"bench-{i:D8}";

    private static string Sha(int i) => i.ToString("x64", CultureInfo.InvariantCulture);

    /// <summary>The media rows the backfill's content check reads (untimed: they exist before a run).</summary>
    private static async Task CopyMediaAsync(BenchDatabase db, int count)
    {
        await using var connection = await db.DataSource.OpenConnectionAsync();
        await using var writer = await connection.BeginBinaryImportAsync("COPY media (id, tenant, modality, source, sha256) FROM STDIN (FORMAT BINARY)");
        for (var i = 0; i < count; i++)
        {
            await writer.StartRowAsync();
            await writer.WriteAsync(Id(i), NpgsqlDbType.Text);
            await writer.WriteAsync("bench", NpgsqlDbType.Text);
            await writer.WriteAsync("image", NpgsqlDbType.Text);
            await writer.WriteAsync("inline", NpgsqlDbType.Text);
            await writer.WriteAsync(Sha(i), NpgsqlDbType.Text);
        }
        await writer.CompleteAsync();
    }

    /// <summary>Unit vectors around 200 centres (embeddings cluster by content; uniform noise is not what an index sees).</summary>
    private static float[][] Clustered(int count, int dim)
    {
        var random = new Random(7);
        float[] Unit(float[] v)
        {
            var norm = MathF.Sqrt(v.Sum(x => x * x));
            for (var d = 0; d < v.Length; d++) v[d] /= norm;
            return v;
        }
        float[] Gaussian() => [.. Enumerable.Range(0, dim).Select(_ => (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble())))];
        var centres = Enumerable.Range(0, 200).Select(_ => Unit(Gaussian())).ToArray();
        return [.. Enumerable.Range(0, count).Select(i =>
        {
            var noise = Unit(Gaussian());
            var c = centres[random.Next(centres.Length)];
            return Unit([.. c.Select((x, d) => x + 0.6f * noise[d])]);
        })];
    }

    private static string Report(Options o, Machine machine, DateTime started, string command, Case[] cases, Dictionary<string, List<Result>> results)
    {
        static double Median(IEnumerable<double> values)
        {
            var v = values.Order().ToArray();
            return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
        }
        var c = CultureInfo.InvariantCulture;
        var baseline = Median(results[cases[0].Name].Select(r => r.Total));
        var s = new StringBuilder();
        s.AppendLine("## Index build for a backfilled version: indexed as rows come vs bulk load then CREATE INDEX");
        s.AppendLine();
        s.AppendLine(c, $"Command: `{command}` (with `eval \"$(scripts/services.sh env)\"`). Run {started:yyyy-MM-dd HH:mm} UTC on {machine.Model}, {machine.Cores} cores, load average at the end {Machine.LoadAverageNow()}.");
        s.AppendLine(c, $"{o.Items:N0} clustered unit vectors of {o.Dim} dimensions, written through the product's race-safe backfill write (`BackfillWriter`) in batches of {o.Batch}, one writer; HNSW m = 16, ef_construction = 64 (pgvector defaults); PostgreSQL 15, pgvector 0.8. Each case in a fresh database; {o.Rounds} rounds, cases in rotating order; medians. Ratio = total time of (a) / total time of the case (higher is faster). Recall@10 against an exact scan, {o.Queries} queries, as the verify gate measures it.");
        s.AppendLine();
        s.AppendLine("| case | load s | index s | total s | items/s | ratio vs (a) | recall@10 | totals per round |");
        s.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        foreach (var k in cases)
        {
            var r = results[k.Name];
            var total = Median(r.Select(x => x.Total));
            s.AppendLine(c, $"| {k.Name} | {Median(r.Select(x => x.LoadSeconds)):F1} | {Median(r.Select(x => x.IndexSeconds)):F1} | {total:F1} | {o.Items / total:N0} | {baseline / total:F2}× | {Median(r.Select(x => x.Recall)):F3} | {string.Join(" / ", r.Select(x => x.Total.ToString("F1", c)))} |");
        }
        return s.ToString();
    }

    private static void Log(string message) => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");

    private static string? RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FreeBind.Pipeline.sln"))) return dir.FullName;
        return null;
    }
}
