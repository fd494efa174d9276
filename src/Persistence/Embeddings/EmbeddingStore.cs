using System.Diagnostics;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging;
using Npgsql;
using Pgvector;

namespace FreeBind.Persistence.Embeddings;

/// <summary>Rows changed by one batch write; all zero when the batch was a replay.</summary>
/// <param name="Media">media rows inserted or changed.</param>
/// <param name="Embeddings">Embedding rows inserted or changed (all versions).</param>
/// <param name="Atoms">Atom rows inserted, changed or removed.</param>
/// <param name="Tags">Tag rows inserted, changed or removed.</param>
/// <param name="Content">Stored-content rows inserted, changed or removed.</param>
public readonly record struct WriteResult(int Media, int Embeddings, int Atoms, int Tags, int Content = 0)
{
    /// <summary>True when nothing was written (a replay of stored data).</summary>
    public bool Unchanged => Media == 0 && Embeddings == 0 && Atoms == 0 && Tags == 0 && Content == 0;
}

/// <summary>
/// Writes embedded media to Postgres, idempotently: each row is an upsert keyed by media id (and
/// space version, which owns the table), and an upsert whose values equal the stored ones rewrites
/// nothing, so a replayed event changes no row, not even its timestamps.
/// </summary>
public sealed class EmbeddingStore(NpgsqlDataSource dataSource, ILogger<EmbeddingStore> logger)
{
    /// <summary>
    /// Writes upserted items in one transaction (one round trip): media rows, atom sets, stored
    /// content, and each item's vector and tags in every version it names. When it returns, the
    /// rows are durable.
    /// </summary>
    /// <param name="items">The items; a later item with the same media id wins (stream order).</param>
    /// <param name="cancellationToken">Cancels the write (the transaction rolls back).</param>
    /// <exception cref="ArgumentException">A vector has the wrong width or is not finite (names the media id).</exception>
    public async Task<WriteResult> WriteAsync(IReadOnlyList<ItemWrite> items, CancellationToken cancellationToken = default)
    {
        var batch = Prepare(items);
        if (batch.Count == 0)
            return default;

        var started = Stopwatch.GetTimestamp();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        await using var commands = new NpgsqlBatch(connection, tx);
        ItemMerge.Add(commands, batch);
        await commands.ExecuteNonQueryAsync(cancellationToken);
        await tx.CommitAsync(cancellationToken);
        Log.BatchWritten(logger, batch.Count, string.Join(",", batch.SelectMany(i => i.Embeddings).Select(e => e.Version.TableName).Distinct()),
            Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return ItemMerge.Result(commands);
    }

    /// <summary>Upserts items into one version (<see cref="WriteAsync"/> with one embedding per item and no stored content).</summary>
    /// <param name="version">The space version the embeddings belong to.</param>
    /// <param name="items">The items; a later item with the same media id wins (stream order).</param>
    /// <param name="cancellationToken">Cancels the write (the transaction rolls back).</param>
    public Task<WriteResult> WriteBatchAsync(SpaceVersion version, IReadOnlyList<EmbeddedItem> items, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(version);
        return WriteAsync([.. items.Select(i => new ItemWrite(i.Media, i.Atoms, [new VersionEmbedding(version, i.Embedding, i.Tags)]))], cancellationToken);
    }

    /// <summary>Deletes media items with, by cascade, their vectors in every space version, atoms and tags.</summary>
    /// <param name="mediaIds">Ids to delete; unknown ids are ignored (a replayed delete is a no-op).</param>
    /// <param name="cancellationToken">Cancels the delete.</param>
    /// <returns>The number of media items deleted.</returns>
    public async Task<int> DeleteAsync(IReadOnlyCollection<string> mediaIds, CancellationToken cancellationToken = default)
    {
        if (mediaIds.Count == 0)
            return 0;
        await using var cmd = dataSource.CreateCommand("DELETE FROM media WHERE id = ANY($1)");
        cmd.Parameters.Add(new() { Value = mediaIds.ToArray() });
        var count = await cmd.ExecuteNonQueryAsync(cancellationToken);
        Log.MediaDeleted(logger, count);
        return count;
    }

    /// <summary>The stored fused vector of a media item in a version, or null.</summary>
    /// <param name="version">Space version.</param>
    /// <param name="mediaId">Media id.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public async Task<float[]?> GetEmbeddingAsync(SpaceVersion version, string mediaId, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand($"SELECT embedding FROM {SpaceCatalog.Quote(version.TableName)} WHERE media_id = $1");
        cmd.Parameters.Add(new() { Value = mediaId });
        return await cmd.ExecuteScalarAsync(cancellationToken) is Vector v ? v.ToArray() : null;
    }

    /// <summary>
    /// A stored vector of identical content (same modality and SHA-256) in a version, or null: a hit
    /// means the content need not be decoded nor encoded again.
    /// </summary>
    /// <param name="version">Space version.</param>
    /// <param name="modality">Modality of the content.</param>
    /// <param name="sha256">Lower-case hex SHA-256 of the content bytes.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public async Task<float[]?> FindByContentAsync(SpaceVersion version, string modality, string sha256, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand($"""
            SELECT e.embedding FROM media m JOIN {SpaceCatalog.Quote(version.TableName)} e ON e.media_id = m.id
            WHERE m.sha256 = $1 AND m.modality = $2 LIMIT 1
            """);
        cmd.Parameters.Add(new() { Value = sha256 });
        cmd.Parameters.Add(new() { Value = modality });
        return await cmd.ExecuteScalarAsync(cancellationToken) is Vector v ? v.ToArray() : null;
    }

    /// <summary>The stored atoms of a media item (input of a re-fusion).</summary>
    /// <param name="mediaId">Media id.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public async Task<IReadOnlyList<Atom>> GetAtomsAsync(string mediaId, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand("SELECT expert, model_digest, embedding FROM atoms WHERE media_id = $1 ORDER BY expert, model_digest");
        cmd.Parameters.Add(new() { Value = mediaId });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        var atoms = new List<Atom>();
        while (await reader.ReadAsync(cancellationToken))
            atoms.Add(new Atom(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<Vector>(2).Memory));
        return atoms;
    }

    /// <summary>Number of embeddings stored in a version.</summary>
    /// <param name="version">Space version.</param>
    /// <param name="cancellationToken">Cancels the count.</param>
    public async Task<long> CountAsync(SpaceVersion version, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand($"SELECT count(*) FROM {SpaceCatalog.Quote(version.TableName)}");
        return (long)(await cmd.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>The stored content of an item (text, or inline data under the cap), or null when it has none.</summary>
    /// <param name="mediaId">Media id.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public async Task<byte[]?> GetContentAsync(string mediaId, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand("SELECT data FROM media_content WHERE media_id = $1");
        cmd.Parameters.Add(new() { Value = mediaId });
        return await cmd.ExecuteScalarAsync(cancellationToken) as byte[];
    }

    // Last write per media id wins and rows are ordered by id, so two workers writing overlapping
    // batches lock rows in the same order (no deadlock). Bad vectors fail here with a clear message.
    private static List<ItemWrite> Prepare(IReadOnlyList<ItemWrite> items)
    {
        var byId = new Dictionary<string, ItemWrite>(items.Count, StringComparer.Ordinal);
        foreach (var item in items)
        {
            foreach (var e in item.Embeddings)
            {
                if (e.Embedding.Length != e.Version.Dimension)
                    throw new ArgumentException($"media {item.Media.Id}: embedding has {e.Embedding.Length} dimensions, {e.Version.Key} has {e.Version.Dimension}", nameof(items));
                RequireFinite(e.Embedding.Span, item.Media.Id, "embedding");
            }
            foreach (var atom in item.Atoms)
                RequireFinite(atom.Vector.Span, item.Media.Id, "atom " + atom.Expert);
            byId[item.Media.Id] = item;
        }
        var list = byId.Values.ToList();
        list.Sort((a, b) => string.CompareOrdinal(a.Media.Id, b.Media.Id));
        return list;
    }

    private static void RequireFinite(ReadOnlySpan<float> values, string mediaId, string what)
    {
        foreach (var v in values)
            if (!float.IsFinite(v))
                throw new ArgumentException($"media {mediaId}: {what} contains NaN or infinity");
    }
}
