using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging;
using Npgsql;
using Pgvector;

namespace FreeBind.Persistence.Reembedding;

/// <summary>
/// Writes a backfill batch into the version being built, safe against live ingestion writing the same
/// items at the same time.
/// </summary>
/// <remarks>
/// The race: a batch reads item X (content c1, its atoms), spends a while fusing or encoding, then
/// writes v(c1). Meanwhile live ingestion may upsert X with new content c2 and dual-write v(c2) into
/// the building version, or delete X. Written naively, the batch's stale v(c1) would overwrite the
/// newer v(c2), or its insert would fail on (or resurrect) a deleted item. It is closed in SQL, in one
/// statement:
/// <list type="bullet">
/// <item>each row is inserted only if the <c>media</c> row still has the modality and content digest the
/// batch read, checked under <c>FOR SHARE</c>: a live upsert or delete in flight makes the batch wait
/// for it and then re-check (so it skips X), and one that comes later waits for the batch and then
/// overwrites its row with the newer vector;</item>
/// <item>a row already in the building version that describes the item's current content (a live
/// dual-write, or an earlier delivery of the same batch) is never replaced by a backfill. Only a row
/// computed from older content is (its <c>content_sha256</c>, migration 5, differs): one a backfill
/// wrote before a worker that had not yet seen the building version changed the item.</item>
/// </list>
/// Rows are locked in media-id order, as the live writer locks them, so the two never deadlock.
/// </remarks>
public sealed class BackfillWriter(NpgsqlDataSource dataSource, ILogger<BackfillWriter> logger)
{
    /// <summary>
    /// Inserts the rows (with their new atoms and tags) into <paramref name="version"/>'s table where the
    /// item still has the content the batch read and the version has no row of that content yet
    /// (a row of older content is replaced). Idempotent.
    /// </summary>
    /// <param name="version">The version being built.</param>
    /// <param name="rows">The batch; a later row with the same media id wins.</param>
    /// <param name="cancellationToken">Cancels the write (the transaction rolls back).</param>
    /// <exception cref="SpaceVersionException">The version's table is gone (cancelled, failed or dropped).</exception>
    /// <exception cref="ArgumentException">A vector has the wrong width or is not finite.</exception>
    public async Task<BackfillWriteResult> WriteAsync(SpaceVersion version, IReadOnlyList<BackfillRow> rows, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(version);
        var batch = Prepare(version, rows);
        if (batch.Count == 0)
            return default;
        var atoms = batch.SelectMany(r => r.Atoms.DistinctBy(a => (a.Expert, a.ModelDigest)).Select(a => (r.MediaId, Atom: a))).ToList();
        var tags = batch.SelectMany(r => r.Tags.DistinctBy(t => (t.VocabularyId, t.Label)).Select(t => (r.MediaId, Tag: t))).ToList();

        await using var cmd = dataSource.CreateCommand($"""
            WITH batch AS (
                SELECT * FROM unnest(@id::text[], @modality::text[], @sha256::text[], @embedding::vector[]) AS b(media_id, modality, sha256, embedding)
            ), live AS MATERIALIZED (
                SELECT b.media_id, b.embedding
                FROM batch b JOIN media m ON m.id = b.media_id AND m.sha256 = b.sha256 AND m.modality = b.modality
                ORDER BY b.media_id COLLATE "C"
                FOR SHARE OF m
            ), written AS (
                INSERT INTO {SpaceVersionRows.Quote(version.TableName)} AS t (media_id, embedding)
                SELECT media_id, embedding FROM live
                ON CONFLICT (media_id) DO UPDATE SET embedding = excluded.embedding, updated_at = now()
                WHERE t.content_sha256 <> excluded.content_sha256
                RETURNING media_id
            ), new_atoms AS (
                INSERT INTO atoms (media_id, expert, model_digest, embedding)
                SELECT a.media_id, a.expert, a.model_digest, a.embedding
                FROM unnest(@a_media::text[], @a_expert::text[], @a_digest::text[], @a_embedding::vector[]) AS a(media_id, expert, model_digest, embedding)
                WHERE a.media_id IN (SELECT media_id FROM live)
                ON CONFLICT (media_id, expert, model_digest) DO NOTHING
                RETURNING 1
            ), new_tags AS (
                INSERT INTO media_tags AS mt (media_id, space_version_id, vocabulary_id, label, score)
                SELECT t.media_id, @version, t.vocabulary_id, t.label, t.score
                FROM unnest(@t_media::text[], @t_vocab::bigint[], @t_label::text[], @t_score::real[]) AS t(media_id, vocabulary_id, label, score)
                WHERE t.media_id IN (SELECT media_id FROM written)
                ON CONFLICT (media_id, space_version_id, vocabulary_id, label) DO UPDATE SET score = excluded.score
                WHERE mt.score IS DISTINCT FROM excluded.score
                RETURNING 1
            ), stale_tags AS (
                -- A replaced row's tags from its older content (disjoint from the rows inserted above).
                DELETE FROM media_tags mt
                WHERE mt.space_version_id = @version AND mt.media_id IN (SELECT media_id FROM written)
                  AND NOT EXISTS (SELECT 1 FROM unnest(@t_media::text[], @t_vocab::bigint[], @t_label::text[]) AS n(media_id, vocabulary_id, label)
                                  WHERE n.media_id = mt.media_id AND n.vocabulary_id = mt.vocabulary_id AND n.label = mt.label)
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM live)::int, (SELECT count(*) FROM written)::int,
                   (SELECT count(*) FROM new_atoms)::int + (SELECT count(*) FROM new_tags)::int + (SELECT count(*) FROM stale_tags)::int
            """);
        cmd.CommandTimeout = 0;
        var p = cmd.Parameters;
        p.AddWithValue("id", batch.Select(r => r.MediaId).ToArray());
        p.AddWithValue("modality", batch.Select(r => r.Modality).ToArray());
        p.AddWithValue("sha256", batch.Select(r => r.Sha256).ToArray());
        p.AddWithValue("embedding", batch.Select(r => new Vector(r.Embedding)).ToArray());
        p.AddWithValue("a_media", atoms.Select(a => a.MediaId).ToArray());
        p.AddWithValue("a_expert", atoms.Select(a => a.Atom.Expert).ToArray());
        p.AddWithValue("a_digest", atoms.Select(a => a.Atom.ModelDigest).ToArray());
        p.AddWithValue("a_embedding", atoms.Select(a => new Vector(a.Atom.Vector)).ToArray());
        p.AddWithValue("version", version.Id);
        p.AddWithValue("t_media", tags.Select(t => t.MediaId).ToArray());
        p.AddWithValue("t_vocab", tags.Select(t => t.Tag.VocabularyId).ToArray());
        p.AddWithValue("t_label", tags.Select(t => t.Tag.Label).ToArray());
        p.AddWithValue("t_score", tags.Select(t => t.Tag.Score).ToArray());
        int live, written;
        try
        {
            await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            (live, written) = (reader.GetInt32(0), reader.GetInt32(1));
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            throw await SpaceVersionLifecycle.VanishedAsync(dataSource, version);
        }
        var result = new BackfillWriteResult(written, live - written, batch.Count - live);
        Log.BackfillWritten(logger, version.Key, result.Written, result.AlreadyPresent, result.Superseded);
        return result;
    }

    private static List<BackfillRow> Prepare(SpaceVersion version, IReadOnlyList<BackfillRow> rows)
    {
        var byId = new Dictionary<string, BackfillRow>(rows.Count, StringComparer.Ordinal);
        foreach (var row in rows)
        {
            if (row.Embedding.Length != version.Dimension)
                throw new ArgumentException($"media {row.MediaId}: embedding has {row.Embedding.Length} dimensions, {version.Key} has {version.Dimension}", nameof(rows));
            RequireFinite(row.Embedding.Span, row.MediaId, "embedding");
            foreach (var atom in row.Atoms)
                RequireFinite(atom.Vector.Span, row.MediaId, "atom " + atom.Expert);
            byId[row.MediaId] = row;
        }
        var list = byId.Values.ToList();
        list.Sort((a, b) => string.CompareOrdinal(a.MediaId, b.MediaId));
        return list;
    }

    private static void RequireFinite(ReadOnlySpan<float> values, string mediaId, string what)
    {
        foreach (var v in values)
            if (!float.IsFinite(v))
                throw new ArgumentException($"media {mediaId}: {what} contains NaN or infinity");
    }
}
