using System.Diagnostics;
using System.Diagnostics.Metrics;
using FreeBind.Consumers.Ingestion;
using FreeBind.Consumers.Spaces;
using FreeBind.Encoding;
using FreeBind.Encoding.Experts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Pgvector;

namespace FreeBind.Benchmarks.Ingestion;

/// <summary>One timed phase of the worker: events made durable per second, and where the time went.</summary>
internal sealed record PhaseResult(int Events, double Seconds, double ProduceSeconds, long CacheHits,
    (int Batches, long Items, double Milliseconds, int Largest) Writes, (long Batches, long Items) Encoder, double ProcessCpuSeconds,
    int Pauses, int PeakInFlight)
{
    public double EventsPerSecond => Events / Seconds;

    /// <summary>CPU time of this process (worker, encoders, Kafka/Redis/Npgsql clients; not Postgres or Redis) per event.</summary>
    public double CpuMsPerEvent => ProcessCpuSeconds * 1000 / Events;
}

/// <summary>The rows the worker wrote for the timed events, read back for the COPY ceiling.</summary>
internal sealed record WrittenRows(string Space, string Digest, int Dimension, string Manifest,
    IReadOnlyList<(string Id, string Tenant, string Modality, string Source, string Sha256, string Metadata, Vector Embedding)> Media,
    IReadOnlyList<(string MediaId, string Expert, string ModelDigest, Vector Embedding)> Atoms);

/// <summary>Events keyed <c>{prefix}-{i}</c> whose contents are number <c>first + i</c> of the run's contents.</summary>
internal delegate IReadOnlyList<(string Key, string Value)> EventMaker(string prefix, int first, int count);

internal sealed record EndToEndResult(string Variant, PhaseResult Miss, PhaseResult? Hit, double StartSeconds, WrittenRows? Rows);

/// <summary>
/// End to end: the worker (as `freebind run` hosts it) in this process, a private
/// database, fresh topics on the mock cluster. A warm-up batch is processed first (sessions loaded,
/// JIT warm, space table created), then the timed batch is produced and the clock runs from the
/// first produce call until the worker reports every timed event durable (rows committed, offsets
/// stored). Optionally a second timed batch repeats the same texts under new ids: all cache hits.
/// </summary>
internal static class EndToEndCase
{
    public static async Task<EndToEndResult> RunAsync(BenchContext ctx, string variant, IReadOnlyDictionary<string, string?> overrides,
        int warmup, int events, bool hits, bool keepRows, EventMaker? makeEvents = null)
    {
        makeEvents ??= (prefix, first, count) => [.. ctx.Texts(first, count).Select((t, i) => ($"{prefix}-{i:D6}", BenchContext.TextEvent($"{prefix}-{i:D6}", t)))];
        await using var db = await BenchDatabase.CreateAsync(ctx.Postgres, migrate: false);
        var topics = ctx.NewTopics();
        var settings = ctx.Settings(db.ConnectionString, topics);
        foreach (var (k, v) in overrides) settings[k] = v;
        using var writes = new WriteStats();
        using var host = BenchHost.Build(settings, runWorker: true, writes);

        var started = Stopwatch.StartNew();
        using var worker = new IngestionMetricsListener(host.Services.GetRequiredService<IMeterFactory>());
        await host.StartAsync();
        // Warm-up contents come after the timed ones, so the timed batch still misses the cache.
        await ctx.ProduceAsync(topics.Topic, makeEvents("w", events, warmup));
        // A worker that stops (its log says why) ends the waits at once rather than at their deadline.
        var stopping = host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        await worker.WaitForCompletedAsync(warmup, TimeSpan.FromMinutes(3), stopping);
        var startSeconds = started.Elapsed.TotalSeconds;

        var space = (await host.Services.GetRequiredService<WriteTargets>().StartAsync(CancellationToken.None)).Active!;
        var meters = host.Services.GetRequiredService<IMeterFactory>();
        (long, long) EncoderCounters() => EncoderTotals.Read(meters, space.Definition);

        var miss = await PhaseAsync(ctx, worker, topics.Topic, makeEvents("t", 0, events), warmup, writes, EncoderCounters, stopping);
        PhaseResult? hit = null;
        if (hits)
        {
            // Same contents, new ids: every item is a cache hit (no decoding, no encoders).
            hit = await PhaseAsync(ctx, worker, topics.Topic, makeEvents("h", 0, events), warmup + events, writes, EncoderCounters, stopping);
        }
        await host.StopAsync(TimeSpan.FromSeconds(30));

        var table = space.Version.TableName;
        var timedRows = await db.ScalarAsync<long>($"SELECT count(*) FROM \"{table}\" WHERE media_id LIKE 't-%'");
        if (timedRows != events) throw new InvalidOperationException($"{variant}: {timedRows} timed rows in {table}, expected {events}");
        var rows = keepRows ? await ReadRowsAsync(db, space.Definition.Name, table) : null;
        return new EndToEndResult(variant, miss, hit, startSeconds, rows);
    }

    private static async Task<PhaseResult> PhaseAsync(BenchContext ctx, IngestionMetricsListener worker, string topic,
        IReadOnlyList<(string Key, string Value)> messages, long before, WriteStats writes, Func<(long Batches, long Items)> encoder,
        CancellationToken stopping)
    {
        writes.Reset();
        var encoderBefore = encoder();
        var hitsBefore = worker.CacheHits;
        var pausesBefore = worker.Pauses;
        using var self = Process.GetCurrentProcess();
        var cpuBefore = self.TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        await ctx.ProduceAsync(topic, messages);
        var produced = watch.Elapsed.TotalSeconds;
        await worker.WaitForCompletedAsync(before + messages.Count, TimeSpan.FromMinutes(5), stopping);
        var seconds = watch.Elapsed.TotalSeconds;
        self.Refresh();
        var cpu = (self.TotalProcessorTime - cpuBefore).TotalSeconds;
        var encoderAfter = encoder();
        return new PhaseResult(messages.Count, seconds, produced, worker.CacheHits - hitsBefore, writes.Snapshot(),
            (encoderAfter.Batches - encoderBefore.Batches, encoderAfter.Items - encoderBefore.Items), cpu, (int)(worker.Pauses - pausesBefore), (int)worker.PeakInFlight);
    }

    private static async Task<WrittenRows> ReadRowsAsync(BenchDatabase db, string space, string table)
    {
        string digest, manifest;
        int dimension;
        await using (var cmd = db.DataSource.CreateCommand("SELECT digest, dimension, manifest::text FROM space_versions WHERE space = $1 AND state = 'active'"))
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = space });
            await using var r = await cmd.ExecuteReaderAsync();
            if (!await r.ReadAsync()) throw new InvalidOperationException($"no active version of {space}");
            (digest, dimension, manifest) = (r.GetString(0), r.GetInt32(1), r.GetString(2));
        }
        var media = new List<(string, string, string, string, string, string, Vector)>();
        await using (var cmd = db.DataSource.CreateCommand($"""
            SELECT m.id, m.tenant, m.modality, m.source, m.sha256, m.metadata::text, e.embedding
            FROM media m JOIN "{table}" e ON e.media_id = m.id WHERE m.id LIKE 't-%' ORDER BY m.id
            """))
        await using (var r = await cmd.ExecuteReaderAsync())
            while (await r.ReadAsync())
                media.Add((r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetFieldValue<Vector>(6)));
        var atoms = new List<(string, string, string, Vector)>();
        await using (var cmd = db.DataSource.CreateCommand("SELECT media_id, expert, model_digest, embedding FROM atoms WHERE media_id LIKE 't-%' ORDER BY media_id, expert"))
        await using (var r = await cmd.ExecuteReaderAsync())
            while (await r.ReadAsync())
                atoms.Add((r.GetString(0), r.GetString(1), r.GetString(2), r.GetFieldValue<Vector>(3)));
        return new WrittenRows(space, digest, dimension, manifest, media, atoms);
    }
}
