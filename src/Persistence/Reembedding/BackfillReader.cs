using System.Data;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Spaces;
using Npgsql;
using Pgvector;

namespace FreeBind.Persistence.Reembedding;

/// <summary>
/// What a backfill reads: keyset ranges of media ids (by id, only the modalities a version serves), and
/// each batch's items with their stored atoms, from one snapshot so that atoms and content digest agree.
/// </summary>
public sealed class BackfillReader(NpgsqlDataSource dataSource)
{
    /// <summary>
    /// The next range of up to <paramref name="size"/> ids after <paramref name="after"/>, or null when
    /// none is left. The planner calls it in a loop (each range is one batch message); items added later
    /// inside a range are read with it, later ones reach the new version by live dual-writes (or
    /// <see cref="ReadMissingAsync"/>).
    /// </summary>
    /// <param name="modalities">The modalities the new version serves.</param>
    /// <param name="after">The previous range's <see cref="BackfillRange.Last"/>; null to start.</param>
    /// <param name="size">Ids per range (the batch size).</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    public async Task<BackfillRange?> NextRangeAsync(IReadOnlyCollection<string> modalities, string? after, int size, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        await using var cmd = dataSource.CreateCommand("""
            SELECT max(id), count(*)::int FROM (
                SELECT id FROM media WHERE ($1::text IS NULL OR id > $1) AND modality = ANY($2) ORDER BY id LIMIT $3) s
            """);
        cmd.Parameters.Add(new() { Value = (object?)after ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        cmd.Parameters.Add(new() { Value = modalities.ToArray() });
        cmd.Parameters.Add(new() { Value = size });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return reader.GetInt32(1) == 0 ? null : new BackfillRange(after, reader.GetString(0), reader.GetInt32(1));
    }

    /// <summary>Live items of the given modalities, per modality (the plan's and the gate's denominators).</summary>
    /// <param name="modalities">The modalities.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    public async Task<IReadOnlyDictionary<string, long>> CountAsync(IReadOnlyCollection<string> modalities, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand("SELECT modality, count(*) FROM media WHERE modality = ANY($1) GROUP BY modality");
        cmd.Parameters.Add(new() { Value = modalities.ToArray() });
        var counts = modalities.ToDictionary(m => m, _ => 0L, StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            counts[reader.GetString(0)] = reader.GetInt64(1);
        return counts;
    }

    /// <summary>
    /// The items of a range with the stored atoms asked for, ordered by id, read in one snapshot: an
    /// item's atoms describe the content digest returned with it, which <see cref="BackfillWriter"/> checks again.
    /// </summary>
    /// <param name="range">The range (its bounds; items now in it are read, whatever was planned).</param>
    /// <param name="modalities">The modalities the new version serves.</param>
    /// <param name="atoms">The atoms a re-fusion reads (unchanged experts); null for every stored atom.</param>
    /// <param name="withContent">Also read the stored content (for items an encoder must see again).</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public Task<IReadOnlyList<BackfillSource>> ReadAsync(
        BackfillRange range, IReadOnlyCollection<string> modalities, IReadOnlyCollection<AtomKey>? atoms, bool withContent = false,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(range);
        return ReadAsync(
            "($1::text IS NULL OR m.id > $1) AND m.id <= $2 AND m.modality = ANY($3)",
            [Text(range.After), range.Last, modalities.ToArray()], null, atoms, withContent, cancellationToken);
    }

    /// <summary>
    /// Up to <paramref name="limit"/> live items of the served modalities that have no row of their
    /// current content in <paramref name="version"/> (none, or one computed from older content), and
    /// no failure listed for <paramref name="runId"/>, after <paramref name="after"/>: the catch-up pass
    /// before the verify gate, for items whose content changed while a worker did not yet write the
    /// new version.
    /// </summary>
    /// <param name="version">The version being built.</param>
    /// <param name="modalities">The modalities it serves.</param>
    /// <param name="runId">The run; its listed failures are not returned again. Null to return them too.</param>
    /// <param name="after">Keyset: the last id of the previous page; null to start.</param>
    /// <param name="limit">Items per page.</param>
    /// <param name="atoms">The atoms to read with them; null for all.</param>
    /// <param name="withContent">Also read the stored content.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="SpaceVersionException">The version's table is gone.</exception>
    public async Task<IReadOnlyList<BackfillSource>> ReadMissingAsync(
        SpaceVersion version, IReadOnlyCollection<string> modalities, Guid? runId, string? after, int limit,
        IReadOnlyCollection<AtomKey>? atoms, bool withContent = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(version);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        try
        {
            return await ReadAsync($"""
                ($1::text IS NULL OR m.id > $1) AND m.modality = ANY($2)
                AND NOT EXISTS (SELECT 1 FROM {SpaceVersionRows.Quote(version.TableName)} e
                                WHERE e.media_id = m.id AND (e.content_sha256 IS NULL OR e.content_sha256 = m.sha256))
                AND NOT EXISTS (SELECT 1 FROM reembed_failures f WHERE f.run_id = $3 AND f.media_id = m.id)
                """, [Text(after), modalities.ToArray(), new NpgsqlParameter { Value = (object?)runId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid }],
                limit, atoms, withContent, cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            throw await SpaceVersionLifecycle.VanishedAsync(dataSource, version);
        }
    }

    /// <summary>
    /// A uniform random sample of up to <paramref name="count"/> live items of the served modalities
    /// that have a row of their current content in <paramref name="version"/>, each with that row's
    /// vector, read in one snapshot (the stored vector describes the content digest returned with it):
    /// what the verify gate recomputes from content and compares. Chosen in SQL (the same seed picks
    /// the same items); only the sampled items are read.
    /// </summary>
    /// <param name="version">The version being verified.</param>
    /// <param name="modalities">The modalities it serves.</param>
    /// <param name="count">Sample size.</param>
    /// <param name="seed">Chooses the items.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="SpaceVersionException">The version's table is gone.</exception>
    public async Task<IReadOnlyList<SampledItem>> SampleAsync(
        SpaceVersion version, IReadOnlyCollection<string> modalities, int count, int seed, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(version);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count == 0)
            return [];
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
        // The ids are chosen first (ids and digests only), then the chosen items' content is read.
        await using var cmd = new NpgsqlCommand($"""
            WITH chosen AS (
                SELECT m.id, e.embedding
                FROM {SpaceVersionRows.Quote(version.TableName)} e JOIN media m ON m.id = e.media_id
                WHERE m.modality = ANY($1) AND (e.content_sha256 IS NULL OR e.content_sha256 = m.sha256)
                ORDER BY md5(m.id || $2) LIMIT $3
            )
            SELECT m.id, m.modality, m.sha256, m.source, m.tenant, c.data, chosen.embedding
            FROM chosen JOIN media m ON m.id = chosen.id LEFT JOIN media_content c ON c.media_id = m.id
            ORDER BY m.id
            """, connection, tx) { CommandTimeout = 0 };
        cmd.Parameters.Add(new() { Value = modalities.ToArray() });
        cmd.Parameters.Add(new() { Value = seed.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        cmd.Parameters.Add(new() { Value = count });
        var sample = new List<SampledItem>(count);
        try
        {
            await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
                sample.Add(new SampledItem(
                    new BackfillSource(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), [])
                    {
                        Content = reader.IsDBNull(5) ? null : (ReadOnlyMemory<byte>?)reader.GetFieldValue<byte[]>(5),
                    },
                    reader.GetFieldValue<Vector>(6).Memory));
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            throw await SpaceVersionLifecycle.VanishedAsync(dataSource, version);
        }
        await tx.CommitAsync(cancellationToken);
        return sample;
    }

    private static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text };

    private async Task<IReadOnlyList<BackfillSource>> ReadAsync(
        string where, object[] args, int? limit, IReadOnlyCollection<AtomKey>? atoms, bool withContent, CancellationToken ct)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        // One snapshot for the items and their atoms (a live upsert between the two reads would pair
        // one content's digest with another's atoms).
        await using var tx = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, ct);
        var items = new List<(string Id, string Modality, string Sha, string Source, string Tenant, byte[]? Content)>();
        var content = withContent ? "(SELECT c.data FROM media_content c WHERE c.media_id = m.id)" : "NULL::bytea";
        await using (var cmd = new NpgsqlCommand(
            $"SELECT m.id, m.modality, m.sha256, m.source, m.tenant, {content} FROM media m WHERE {where} ORDER BY m.id{(limit is { } n ? $" LIMIT {n}" : "")}",
            connection, tx))
        {
            foreach (var arg in args)
                cmd.Parameters.Add(arg as NpgsqlParameter ?? new NpgsqlParameter { Value = arg });
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
                items.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                    reader.IsDBNull(5) ? null : reader.GetFieldValue<byte[]>(5)));
        }
        var byId = items.ToDictionary(i => i.Id, _ => new List<Atom>(), StringComparer.Ordinal);
        if (items.Count > 0)
        {
            var filter = atoms is null ? "" : " AND (a.expert, a.model_digest) IN (SELECT * FROM unnest($2::text[], $3::text[]))";
            await using var cmd = new NpgsqlCommand(
                $"SELECT a.media_id, a.expert, a.model_digest, a.embedding FROM atoms a WHERE a.media_id = ANY($1){filter} ORDER BY a.media_id, a.expert, a.model_digest",
                connection, tx);
            cmd.Parameters.Add(new() { Value = items.Select(i => i.Id).ToArray() });
            if (atoms is not null)
            {
                cmd.Parameters.Add(new() { Value = atoms.Select(a => a.Expert).ToArray() });
                cmd.Parameters.Add(new() { Value = atoms.Select(a => a.ModelDigest).ToArray() });
            }
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
                byId[reader.GetString(0)].Add(new Atom(reader.GetString(1), reader.GetString(2), reader.GetFieldValue<Vector>(3).Memory));
        }
        await tx.CommitAsync(ct);
        return items.Select(i => new BackfillSource(i.Id, i.Modality, i.Sha, i.Source, i.Tenant, byId[i.Id])
        {
            Content = i.Content is { } bytes ? (ReadOnlyMemory<byte>?)bytes : null,  // typed: a bare null would become an empty Memory
        }).ToList();
    }
}
