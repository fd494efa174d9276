using System.Diagnostics;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Pgvector;

namespace FreeBind.Persistence.Embeddings;

/// <summary>Rows changed by one batch write; all zero when the batch was a replay.</summary>
/// <param name="Media">media rows inserted or changed.</param>
/// <param name="Embeddings">Embedding rows inserted or changed.</param>
/// <param name="Atoms">Atom rows inserted or changed.</param>
/// <param name="Tags">Tag rows inserted, changed or removed.</param>
public readonly record struct WriteResult(int Media, int Embeddings, int Atoms, int Tags)
{
    /// <summary>True when nothing was written (a replay of stored data).</summary>
    public bool Unchanged => Media == 0 && Embeddings == 0 && Atoms == 0 && Tags == 0;
}

/// <summary>
/// Writes embedded media to Postgres, idempotently: each row is an upsert keyed by media id (and
/// space version, which owns the table), and an upsert whose values equal the stored ones rewrites
/// nothing, so a replayed event changes no row, not even its timestamps.
/// </summary>
public sealed class EmbeddingStore(NpgsqlDataSource dataSource, IOptions<PersistenceOptions> options, ILogger<EmbeddingStore> logger)
{
    /// <summary>Writes a batch with the configured strategy in one transaction; when it returns, the rows are durable.</summary>
    /// <param name="version">The space version the embeddings belong to.</param>
    /// <param name="items">The items; a later item with the same media id wins (stream order).</param>
    /// <param name="cancellationToken">Cancels the write (the transaction rolls back).</param>
    public Task<WriteResult> WriteBatchAsync(SpaceVersion version, IReadOnlyList<EmbeddedItem> items, CancellationToken cancellationToken = default) =>
        WriteBatchAsync(version, items, options.Value.WriteStrategy, cancellationToken);

    /// <summary>Writes a batch with an explicit strategy (benchmarks, tests).</summary>
    /// <param name="version">The space version the embeddings belong to.</param>
    /// <param name="items">The items; a later item with the same media id wins.</param>
    /// <param name="strategy">Unnest arrays or COPY into staging tables.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    public async Task<WriteResult> WriteBatchAsync(
        SpaceVersion version, IReadOnlyList<EmbeddedItem> items, WriteStrategy strategy, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(version);
        var batch = Prepare(version, items);
        if (batch.Count == 0)
            return default;

        var started = Stopwatch.GetTimestamp();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        var result = strategy switch
        {
            WriteStrategy.Unnest => await WriteUnnestAsync(connection, tx, version, batch, cancellationToken),
            WriteStrategy.CopyMerge => await WriteCopyMergeAsync(connection, tx, version, batch, cancellationToken),
            _ => throw new ArgumentOutOfRangeException(nameof(strategy), strategy, null),
        };
        await tx.CommitAsync(cancellationToken);
        Log.BatchWritten(logger, batch.Count, version.TableName, strategy.ToString(), Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return result;
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

    // Last write per media id wins and rows are ordered by id, so two workers writing overlapping
    // batches lock rows in the same order (no deadlock). Bad vectors fail here with a clear message.
    private static List<EmbeddedItem> Prepare(SpaceVersion version, IReadOnlyList<EmbeddedItem> items)
    {
        var byId = new Dictionary<string, EmbeddedItem>(items.Count, StringComparer.Ordinal);
        foreach (var item in items)
        {
            if (item.Embedding.Length != version.Dimension)
                throw new ArgumentException($"media {item.Media.Id}: embedding has {item.Embedding.Length} dimensions, {version.Key} has {version.Dimension}", nameof(items));
            RequireFinite(item.Embedding.Span, item.Media.Id, "embedding");
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

    private static IEnumerable<(string MediaId, Atom Atom)> Atoms(List<EmbeddedItem> batch) =>
        batch.SelectMany(i => i.Atoms.DistinctBy(a => (a.Expert, a.ModelDigest)).Select(a => (i.Media.Id, a)));

    private static IEnumerable<(string MediaId, TagScore Tag)> Tags(List<EmbeddedItem> batch) =>
        batch.SelectMany(i => i.Tags.DistinctBy(t => (t.VocabularyId, t.Label)).Select(t => (i.Media.Id, t)));

    // ---- the merges, shared by both strategies: only their source relation differs ----

    private static string MergeMedia(string source) => $"""
        INSERT INTO media AS t (id, tenant, modality, source, sha256, metadata)
        SELECT id, tenant, modality, source, sha256, metadata FROM {source}
        ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, modality = excluded.modality, source = excluded.source,
            sha256 = excluded.sha256, metadata = excluded.metadata, updated_at = now()
        WHERE (t.tenant, t.modality, t.source, t.sha256, t.metadata)
            IS DISTINCT FROM (excluded.tenant, excluded.modality, excluded.source, excluded.sha256, excluded.metadata)
        """;

    private static string MergeEmbeddings(SpaceVersion version, string source) => $"""
        INSERT INTO {SpaceCatalog.Quote(version.TableName)} AS t (media_id, embedding)
        SELECT media_id, embedding FROM {source}
        ON CONFLICT (media_id) DO UPDATE SET embedding = excluded.embedding, updated_at = now()
        WHERE t.embedding IS DISTINCT FROM excluded.embedding
        """;

    private static string MergeAtoms(string source) => $"""
        INSERT INTO atoms AS t (media_id, expert, model_digest, embedding)
        SELECT media_id, expert, model_digest, embedding FROM {source}
        ON CONFLICT (media_id, expert, model_digest) DO UPDATE SET embedding = excluded.embedding
        WHERE t.embedding IS DISTINCT FROM excluded.embedding
        """;

    // Tags are few per item, so both strategies bind them as arrays. The item's tag set in this
    // version is replaced: stale ones are removed, changed scores updated, equal ones left alone.
    private const string DeleteStaleTags = """
        DELETE FROM media_tags t
        WHERE t.space_version_id = @version AND t.media_id = ANY(@t_items)
          AND NOT EXISTS (SELECT 1 FROM unnest(@t_media, @t_vocab, @t_label) AS n(media_id, vocabulary_id, label)
                          WHERE n.media_id = t.media_id AND n.vocabulary_id = t.vocabulary_id AND n.label = t.label)
        """;

    private const string MergeTags = """
        INSERT INTO media_tags AS t (media_id, space_version_id, vocabulary_id, label, score)
        SELECT media_id, @version, vocabulary_id, label, score
        FROM unnest(@t_media, @t_vocab, @t_label, @t_score) AS n(media_id, vocabulary_id, label, score)
        ON CONFLICT (media_id, space_version_id, vocabulary_id, label) DO UPDATE SET score = excluded.score
        WHERE t.score IS DISTINCT FROM excluded.score
        """;

    private static void AddTagCommands(NpgsqlBatch batch, SpaceVersion version, List<EmbeddedItem> items)
    {
        var tags = Tags(items).ToList();
        NpgsqlParameter[] Parameters() =>
        [
            new("version", version.Id),
            new("t_items", items.Select(i => i.Media.Id).ToArray()),
            new("t_media", tags.Select(t => t.MediaId).ToArray()),
            new("t_vocab", tags.Select(t => t.Tag.VocabularyId).ToArray()),
            new("t_label", tags.Select(t => t.Tag.Label).ToArray()),
            new("t_score", tags.Select(t => t.Tag.Score).ToArray()),
        ];
        var delete = new NpgsqlBatchCommand(DeleteStaleTags);
        delete.Parameters.AddRange(Parameters());
        batch.BatchCommands.Add(delete);
        var merge = new NpgsqlBatchCommand(MergeTags);
        merge.Parameters.AddRange(Parameters());
        batch.BatchCommands.Add(merge);
    }

    private static WriteResult ResultOf(NpgsqlBatch batch, int first) => new(
        batch.BatchCommands[first].RecordsAffected,
        batch.BatchCommands[first + 1].RecordsAffected,
        batch.BatchCommands[first + 2].RecordsAffected,
        batch.BatchCommands[first + 3].RecordsAffected + batch.BatchCommands[first + 4].RecordsAffected);

    // ---- unnest: one round trip, every column bound as an array ----

    private static async Task<WriteResult> WriteUnnestAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, SpaceVersion version, List<EmbeddedItem> items, CancellationToken ct)
    {
        var atoms = Atoms(items).ToList();
        await using var batch = new NpgsqlBatch(connection, tx);

        var media = new NpgsqlBatchCommand(MergeMedia(
            "unnest(@id, @tenant, @modality, @source, @sha256, @metadata) AS s(id, tenant, modality, source, sha256, metadata)"));
        media.Parameters.Add(new("id", items.Select(i => i.Media.Id).ToArray()));
        media.Parameters.Add(new("tenant", items.Select(i => i.Media.Tenant).ToArray()));
        media.Parameters.Add(new("modality", items.Select(i => i.Media.Modality).ToArray()));
        media.Parameters.Add(new("source", items.Select(i => i.Media.Source).ToArray()));
        media.Parameters.Add(new("sha256", items.Select(i => i.Media.Sha256).ToArray()));
        media.Parameters.Add(new("metadata", NpgsqlDbType.Array | NpgsqlDbType.Jsonb) { Value = items.Select(i => i.Media.MetadataJson).ToArray() });
        batch.BatchCommands.Add(media);

        var embeddings = new NpgsqlBatchCommand(MergeEmbeddings(version, "unnest(@id, @embedding) AS s(media_id, embedding)"));
        embeddings.Parameters.Add(new("id", items.Select(i => i.Media.Id).ToArray()));
        embeddings.Parameters.Add(new("embedding", items.Select(i => new Vector(i.Embedding)).ToArray()));
        batch.BatchCommands.Add(embeddings);

        var atomCmd = new NpgsqlBatchCommand(MergeAtoms(
            "unnest(@id, @expert, @model_digest, @embedding) AS s(media_id, expert, model_digest, embedding)"));
        atomCmd.Parameters.Add(new("id", atoms.Select(a => a.MediaId).ToArray()));
        atomCmd.Parameters.Add(new("expert", atoms.Select(a => a.Atom.Expert).ToArray()));
        atomCmd.Parameters.Add(new("model_digest", atoms.Select(a => a.Atom.ModelDigest).ToArray()));
        atomCmd.Parameters.Add(new("embedding", atoms.Select(a => new Vector(a.Atom.Vector)).ToArray()));
        batch.BatchCommands.Add(atomCmd);

        AddTagCommands(batch, version, items);
        await batch.ExecuteNonQueryAsync(ct);
        return ResultOf(batch, 0);
    }

    // ---- COPY: binary COPY into temp staging tables, then the same merges from them ----

    private const string CreateStaging = """
        CREATE TEMP TABLE stage_media (id text, tenant text, modality text, source text, sha256 text, metadata jsonb) ON COMMIT DROP;
        CREATE TEMP TABLE stage_embeddings (media_id text, embedding vector) ON COMMIT DROP;
        CREATE TEMP TABLE stage_atoms (media_id text, expert text, model_digest text, embedding vector) ON COMMIT DROP;
        """;

    private static async Task<WriteResult> WriteCopyMergeAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, SpaceVersion version, List<EmbeddedItem> items, CancellationToken ct)
    {
        await using (var create = new NpgsqlCommand(CreateStaging, connection, tx))
            await create.ExecuteNonQueryAsync(ct);

        await using (var writer = await connection.BeginBinaryImportAsync(
            "COPY stage_media (id, tenant, modality, source, sha256, metadata) FROM STDIN (FORMAT BINARY)", ct))
        {
            foreach (var item in items)
            {
                var m = item.Media;
                await writer.StartRowAsync(ct);
                await writer.WriteAsync(m.Id, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(m.Tenant, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(m.Modality, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(m.Source, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(m.Sha256, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(m.MetadataJson, NpgsqlDbType.Jsonb, ct);
            }
            await writer.CompleteAsync(ct);
        }

        await using (var writer = await connection.BeginBinaryImportAsync(
            "COPY stage_embeddings (media_id, embedding) FROM STDIN (FORMAT BINARY)", ct))
        {
            foreach (var item in items)
            {
                await writer.StartRowAsync(ct);
                await writer.WriteAsync(item.Media.Id, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(new Vector(item.Embedding), "vector", ct);
            }
            await writer.CompleteAsync(ct);
        }

        await using (var writer = await connection.BeginBinaryImportAsync(
            "COPY stage_atoms (media_id, expert, model_digest, embedding) FROM STDIN (FORMAT BINARY)", ct))
        {
            foreach (var (mediaId, atom) in Atoms(items))
            {
                await writer.StartRowAsync(ct);
                await writer.WriteAsync(mediaId, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(atom.Expert, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(atom.ModelDigest, NpgsqlDbType.Text, ct);
                await writer.WriteAsync(new Vector(atom.Vector), "vector", ct);
            }
            await writer.CompleteAsync(ct);
        }

        await using var batch = new NpgsqlBatch(connection, tx);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(MergeMedia("stage_media")));
        batch.BatchCommands.Add(new NpgsqlBatchCommand(MergeEmbeddings(version, "stage_embeddings")));
        batch.BatchCommands.Add(new NpgsqlBatchCommand(MergeAtoms("stage_atoms")));
        AddTagCommands(batch, version, items);
        await batch.ExecuteNonQueryAsync(ct);
        return ResultOf(batch, 0);
    }
}
