using System.Diagnostics;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging.Abstractions;

namespace FreeBind.Benchmarks.Ingestion;

/// <summary>
/// Diagnostic: the worker's write path alone — <see cref="EmbeddingStore.WriteBatchAsync"/> (or, to
/// compare, <see cref="CopyMergeWriter"/>) on the rows the worker wrote, in consecutive batches of
/// the worker's size, into a fresh database with the space version's table — no Kafka, no encoders
/// competing for the cores.
/// </summary>
internal static class StoreOnly
{
    public static async Task<double> RunAsync(BenchContext ctx, WrittenRows rows, bool copyMerge, int batchSize)
    {
        await using var db = await BenchDatabase.CreateAsync(ctx.Postgres, migrate: true);
        var version = await new SpaceCatalog(db.DataSource, NullLogger<SpaceCatalog>.Instance)
            .EnsureVersionAsync(rows.Space, rows.Digest, rows.Dimension, rows.Manifest);
        var store = new EmbeddingStore(db.DataSource, NullLogger<EmbeddingStore>.Instance);
        var copy = new CopyMergeWriter(db.DataSource);
        var atoms = rows.Atoms.ToLookup(a => a.MediaId);
        var items = rows.Media.Select(m => new EmbeddedItem(new MediaItem(m.Id, m.Tenant, m.Modality, m.Source, m.Sha256, m.Metadata),
            m.Embedding.Memory, [.. atoms[m.Id].Select(a => new Atom(a.Expert, a.ModelDigest, a.Embedding.Memory))], [])).ToList();
        var watch = Stopwatch.StartNew();
        foreach (var chunk in items.Chunk(batchSize))
            if (copyMerge) await copy.WriteAsync(version, chunk);
            else await store.WriteBatchAsync(version, chunk);
        return items.Count / watch.Elapsed.TotalSeconds;
    }
}
