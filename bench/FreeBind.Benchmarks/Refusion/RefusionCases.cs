using System.Diagnostics;
using System.Threading.Channels;
using FreeBind.Consumers.Reembedding;
using FreeBind.Encoding;
using FreeBind.Encoding.Fusion;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Spaces;
using NpgsqlTypes;

namespace FreeBind.Benchmarks.Refusion;

/// <summary>
/// What one timed case did: items written, wall seconds of the load (first keyset read to last
/// commit) and of the index build after it, and — with one lane — the load's seconds per stage.
/// </summary>
internal sealed record LoadResult(int Items, double LoadSeconds, double IndexSeconds, double ReadSeconds = double.NaN,
    double FuseSeconds = double.NaN, double WriteSeconds = double.NaN)
{
    public double TotalSeconds => LoadSeconds + IndexSeconds;

    public double ItemsPerSecond => Items / TotalSeconds;

    public double LoadItemsPerSecond => Items / LoadSeconds;
}

/// <summary>
/// The timed cases, each on a new version table of the archive, each built of the product's classes
/// as a backfill worker calls them (only the message transport between the steps is left out).
/// </summary>
internal static class RefusionCases
{
    /// <summary>
    /// The re-fusion backfill: keyset ranges cut as <c>DispatchBackfillConsumer</c> cuts them
    /// (<see cref="BackfillReader.NextRangeAsync"/>), each range read as <c>BackfillBatchConsumer</c>
    /// reads it (<see cref="BackfillReader.ReadAsync"/>, every stored atom, kept content), fused with
    /// <see cref="FusionEngine.FuseBatch"/> and written by the race-safe <see cref="BackfillWriter"/>;
    /// <paramref name="lanes"/> batches in flight at once (competing consumers in one process). Then,
    /// with <paramref name="buildIndex"/>, the version's HNSW index by <see cref="SpaceIndexBuilder"/>.
    /// Stops after <paramref name="limit"/> items (the sweep) or at the end of the archive.
    /// </summary>
    public static async Task<LoadResult> FuseBatchAsync(RefusionArchive archive, RunVersion target, int batch, int lanes, int limit, bool buildIndex)
    {
        var reader = archive.Get<BackfillReader>();
        var writer = archive.Get<BackfillWriter>();
        var engine = archive.Get<Embedder>().Fusion;
        var definition = target.Definition;
        engine.Prepare(definition);
        var ranges = Channel.CreateBounded<BackfillRange>(lanes);
        long readTicks = 0, fuseTicks = 0, writeTicks = 0;
        var written = 0;
        var clock = Stopwatch.StartNew();
        var cutter = Task.Run(async () =>
        {
            string? after = null;
            var cut = 0;
            while (cut < limit && await reader.NextRangeAsync(RefusionArchive.Modalities, after, Math.Min(batch, limit - cut)) is { } range)
            {
                await ranges.Writer.WriteAsync(range);
                after = range.Last;
                cut += range.Items;
            }
            ranges.Writer.Complete();
        });
        var workers = Enumerable.Range(0, lanes).Select(_ => Task.Run(async () =>
        {
            await foreach (var range in ranges.Reader.ReadAllAsync())
            {
                var t0 = Stopwatch.GetTimestamp();
                var sources = await reader.ReadAsync(range, RefusionArchive.Modalities, atoms: null, withContent: true);
                var t1 = Stopwatch.GetTimestamp();
                var items = sources.Select(s => (IReadOnlyDictionary<string, float[]>)s.Atoms.ToDictionary(a => a.Expert, a => a.Vector.ToArray())).ToList();
                var vectors = engine.FuseBatch(definition, Modality.Audio, items);
                var rows = sources.Select((s, i) => new BackfillRow(s.MediaId, s.Modality, s.Sha256, vectors[i], [], [])).ToList();
                var t2 = Stopwatch.GetTimestamp();
                var result = await writer.WriteAsync(target.Version, rows);
                var t3 = Stopwatch.GetTimestamp();
                if (result.Written != rows.Count) throw new InvalidOperationException($"range after {range.After}: {result.Written} of {rows.Count} rows written");
                Interlocked.Add(ref written, result.Written);
                Interlocked.Add(ref readTicks, t1 - t0);
                Interlocked.Add(ref fuseTicks, t2 - t1);
                Interlocked.Add(ref writeTicks, t3 - t2);
            }
        })).ToList();
        await Task.WhenAll([cutter, .. workers]);
        var load = clock.Elapsed.TotalSeconds;
        var index = buildIndex ? await BuildIndexAsync(archive, target.Version) : 0;
        double S(long ticks) => lanes == 1 ? (double)ticks / Stopwatch.Frequency : double.NaN;
        return new LoadResult(written, load, index, S(readTicks), S(fuseTicks), S(writeTicks));
    }

    /// <summary>
    /// The ceiling: the same vectors by one binary COPY (Npgsql <c>BeginBinaryImport</c>, one
    /// transaction) into a version table as the catalog creates it (primary key, foreign key to
    /// media, the content-digest trigger, no index), then the same index build.
    /// </summary>
    public static async Task<LoadResult> CopyAsync(RefusionArchive archive, SpaceVersion version, IReadOnlyList<KeyValuePair<string, float[]>> vectors)
    {
        await using var connection = await archive.Database.DataSource.OpenConnectionAsync();
        var clock = Stopwatch.StartNew();
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await using (var copy = await connection.BeginBinaryImportAsync($"COPY \"{version.TableName}\" (media_id, embedding) FROM STDIN (FORMAT BINARY)"))
            {
                foreach (var (id, vector) in vectors)
                {
                    await copy.StartRowAsync();
                    await copy.WriteAsync(id, NpgsqlDbType.Text);
                    await copy.WriteAsync(new Pgvector.Vector(vector), "vector");
                }
                await copy.CompleteAsync();
            }
            await tx.CommitAsync();
        }
        var load = clock.Elapsed.TotalSeconds;
        await connection.CloseAsync(); // CREATE INDEX CONCURRENTLY waits for every open transaction of the database
        var index = await BuildIndexAsync(archive, version);
        return new LoadResult(vectors.Count, load, index);
    }

    /// <summary>
    /// Items rebuilt as <c>BackfillBatchConsumer</c> rebuilds them: ranges of <paramref name="batch"/>,
    /// read with every stored atom and kept content, <see cref="ItemRebuilder.RebuildAsync(RunVersion, IReadOnlyList{BackfillSource}, CancellationToken)"/>,
    /// written by <see cref="BackfillWriter"/>; the first <paramref name="limit"/> items, no index.
    /// With <paramref name="reencode"/>, the stored atoms are withheld (the read asks for none), so every
    /// expert is run again on the kept content: decode, preprocess, encode, fuse — a full re-encode.
    /// </summary>
    public static async Task<LoadResult> RebuildAsync(RefusionArchive archive, RunVersion target, int batch, int limit, bool reencode)
    {
        var reader = archive.Get<BackfillReader>();
        var writer = archive.Get<BackfillWriter>();
        var rebuilder = archive.Get<ItemRebuilder>();
        IReadOnlyCollection<FreeBind.Persistence.Reembedding.AtomKey>? atoms = reencode ? [] : null;
        var written = 0;
        var clock = Stopwatch.StartNew();
        string? after = null;
        while (written < limit && await reader.NextRangeAsync(RefusionArchive.Modalities, after, Math.Min(batch, limit - written)) is { } range)
        {
            var sources = await reader.ReadAsync(range, RefusionArchive.Modalities, atoms, withContent: true);
            var (rows, failed) = await rebuilder.RebuildAsync(target, sources, CancellationToken.None);
            if (failed.Count > 0) throw new InvalidOperationException($"{failed.Count} items failed, e.g. {failed[0].MediaId}: {failed[0].Reason} {failed[0].Detail}");
            var result = await writer.WriteAsync(target.Version, rows);
            if (result.Written != rows.Count) throw new InvalidOperationException($"range after {range.After}: {result.Written} of {rows.Count} rows written");
            written += result.Written;
            after = range.Last;
        }
        return new LoadResult(written, clock.Elapsed.TotalSeconds, 0);
    }

    private static async Task<double> BuildIndexAsync(RefusionArchive archive, SpaceVersion version)
    {
        var clock = Stopwatch.StartNew();
        if (!await archive.Get<SpaceIndexBuilder>().BuildAsync(version))
            throw new InvalidOperationException($"{version.TableName} already had an index: the case would not be timing a build");
        return clock.Elapsed.TotalSeconds;
    }
}
