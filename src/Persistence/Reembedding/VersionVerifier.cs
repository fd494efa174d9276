using System.Data;
using FreeBind.Persistence.Search;
using FreeBind.Persistence.Spaces;
using Npgsql;
using Pgvector;

namespace FreeBind.Persistence.Reembedding;

/// <summary>Sizes of the verify gate's storage checks.</summary>
/// <param name="RecallQueries">Sample queries for recall (stored vectors of random items). Each costs one exact scan of the version.</param>
/// <param name="K">Neighbours compared (recall@k, top-k overlap).</param>
/// <param name="RequiredRecall">The gate's threshold on mean recall@k.</param>
/// <param name="DriftQueriesPerModality">Sample items per modality for the top-k overlap.</param>
/// <param name="Seed">Chooses the samples; the same seed picks the same items again.</param>
public sealed record VerifyOptions(int RecallQueries = 100, int K = 10, double RequiredRecall = 0.95, int DriftQueriesPerModality = 50, int Seed = 1);

/// <summary>A stored vector with what identifies its content (the sample a recompute checks).</summary>
/// <param name="MediaId">The item.</param>
/// <param name="Modality">Its modality.</param>
/// <param name="Sha256">Digest of the content the vector was computed from.</param>
/// <param name="Vector">The stored vector.</param>
public sealed record StoredVector(string MediaId, string Modality, string Sha256, ReadOnlyMemory<float> Vector);

/// <summary>
/// The storage side of the verify gate (issue 9): coverage of live items, HNSW recall@k against an exact
/// scan, drift against the version being replaced, and the random sample the saga recomputes from content.
/// </summary>
public sealed class VersionVerifier(NpgsqlDataSource dataSource, VectorSearch search)
{
    /// <summary>Coverage, recall and drift as one report (without the sample check, which the saga adds before storing it).</summary>
    /// <param name="runId">The run.</param>
    /// <param name="version">The version to verify (indexed).</param>
    /// <param name="baseline">The version it would replace (usually the active one); null for none.</param>
    /// <param name="modalities">The modalities the version serves.</param>
    /// <param name="options">Sample sizes and threshold; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels the checks.</param>
    public async Task<VerifyReport> VerifyAsync(
        Guid runId, SpaceVersion version, SpaceVersion? baseline, IReadOnlyCollection<string> modalities, VerifyOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        options ??= new VerifyOptions();
        var coverage = await CoverageAsync(runId, version, modalities, cancellationToken);
        var recall = await RecallAsync(version, options, cancellationToken);
        var drift = baseline is null ? [] : await DriftAsync(baseline, version, modalities, options, cancellationToken);
        return new VerifyReport(runId, version.Id, baseline?.Id, coverage, recall, null, drift);
    }

    /// <summary>
    /// Every live item of the served modalities: with a row of its current content in <paramref name="version"/>,
    /// with a listed failure of the run, or missing (no row, or a row computed from older content).
    /// </summary>
    /// <param name="runId">The run whose failures count as accounted for.</param>
    /// <param name="version">The version.</param>
    /// <param name="modalities">The modalities it serves.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    public async Task<CoverageReport> CoverageAsync(Guid runId, SpaceVersion version, IReadOnlyCollection<string> modalities, CancellationToken cancellationToken = default)
    {
        var from = $"""
            FROM media m
            LEFT JOIN {SpaceVersionRows.Quote(version.TableName)} e
                ON e.media_id = m.id AND (e.content_sha256 IS NULL OR e.content_sha256 = m.sha256)
            LEFT JOIN reembed_failures f ON f.run_id = $2 AND f.media_id = m.id
            WHERE m.modality = ANY($1)
            """;
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        // One snapshot: the counts and the sample of missing ids agree.
        await using var tx = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
        long live, covered, failed, missing;
        await using (var cmd = Command(connection, tx, $"""
            SELECT count(*), count(e.media_id),
                   count(*) FILTER (WHERE e.media_id IS NULL AND f.media_id IS NOT NULL),
                   count(*) FILTER (WHERE e.media_id IS NULL AND f.media_id IS NULL)
            {from}
            """, modalities.ToArray(), runId))
        await using (var reader = await ReadAsync(cmd, version, cancellationToken))
        {
            await reader.ReadAsync(cancellationToken);
            (live, covered, failed, missing) = (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3));
        }
        var sample = new List<string>();
        if (missing > 0)
        {
            await using var cmd = Command(connection, tx, $"SELECT m.id {from} AND e.media_id IS NULL AND f.media_id IS NULL ORDER BY m.id LIMIT 20", modalities.ToArray(), runId);
            await using var reader = await ReadAsync(cmd, version, cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
                sample.Add(reader.GetString(0));
        }
        await tx.CommitAsync(cancellationToken);
        return new CoverageReport(live, covered, failed, missing, sample);
    }

    /// <summary>
    /// Mean recall@k of the version's HNSW index against an exact scan, as <c>freebind_search</c> runs
    /// it, over sample queries: stored vectors of random items, each item left out of both answers.
    /// </summary>
    /// <param name="version">An indexed version.</param>
    /// <param name="options">Queries, k, threshold, seed.</param>
    /// <param name="cancellationToken">Cancels the checks.</param>
    public async Task<RecallReport> RecallAsync(SpaceVersion version, VerifyOptions options, CancellationToken cancellationToken = default)
    {
        var queries = await SampleAsync(version, options.RecallQueries, options.Seed, cancellationToken);
        var recalls = new List<double>(queries.Count);
        foreach (var q in queries)
        {
            var exact = await NeighboursAsync(version, q.MediaId, q.Vector, options.K, exact: true, cancellationToken);
            if (exact.Count == 0)
                continue;
            var approximate = await NeighboursAsync(version, q.MediaId, q.Vector, options.K, exact: false, cancellationToken);
            recalls.Add((double)approximate.Intersect(exact, StringComparer.Ordinal).Count() / exact.Count);
        }
        return recalls.Count == 0
            ? new RecallReport(0, options.K, null, null, options.RequiredRecall)
            : new RecallReport(recalls.Count, options.K, recalls.Average(), recalls.Min(), options.RequiredRecall);
    }

    /// <summary>
    /// Drift per modality of <paramref name="candidate"/> from <paramref name="baseline"/>: the mean cosine
    /// of each item's old and new vector (over every item in both; null when the widths differ), and the
    /// mean share of an item's top-k neighbours (searched as served, each version with its own vector of
    /// the item) that stayed, over sample items.
    /// </summary>
    /// <param name="baseline">The version being replaced.</param>
    /// <param name="candidate">The new version (indexed).</param>
    /// <param name="modalities">The modalities to report.</param>
    /// <param name="options">Queries per modality, k, seed.</param>
    /// <param name="cancellationToken">Cancels the checks.</param>
    public async Task<IReadOnlyList<ModalityDrift>> DriftAsync(
        SpaceVersion baseline, SpaceVersion candidate, IReadOnlyCollection<string> modalities, VerifyOptions options, CancellationToken cancellationToken = default)
    {
        var sameWidth = baseline.Dimension == candidate.Dimension;
        var join = $"""
            FROM {SpaceVersionRows.Quote(baseline.TableName)} o
            JOIN {SpaceVersionRows.Quote(candidate.TableName)} n ON n.media_id = o.media_id
            JOIN media m ON m.id = o.media_id
            """;
        var totals = new Dictionary<string, (long Items, double? Mean)>(StringComparer.Ordinal);
        await using (var cmd = dataSource.CreateCommand($"""
            SELECT m.modality, count(*), {(sameWidth ? "avg(1 - (o.embedding <=> n.embedding))" : "NULL::float8")}
            {join} WHERE m.modality = ANY($1) GROUP BY m.modality
            """))
        {
            cmd.CommandTimeout = 0;
            cmd.Parameters.Add(new() { Value = modalities.ToArray() });
            await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
                totals[reader.GetString(0)] = (reader.GetInt64(1), reader.IsDBNull(2) ? null : reader.GetDouble(2));
        }

        var drift = new List<ModalityDrift>();
        foreach (var modality in modalities.Order(StringComparer.Ordinal))
        {
            var samples = new List<(string Id, Vector Old, Vector New)>();
            await using (var cmd = dataSource.CreateCommand($"""
                SELECT o.media_id, o.embedding, n.embedding {join}
                WHERE m.modality = $1 ORDER BY md5(o.media_id || $2) LIMIT $3
                """))
            {
                cmd.CommandTimeout = 0;
                cmd.Parameters.Add(new() { Value = modality });
                cmd.Parameters.Add(new() { Value = options.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                cmd.Parameters.Add(new() { Value = options.DriftQueriesPerModality });
                await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                    samples.Add((reader.GetString(0), reader.GetFieldValue<Vector>(1), reader.GetFieldValue<Vector>(2)));
            }
            var overlaps = new List<double>(samples.Count);
            foreach (var (id, oldVector, newVector) in samples)
            {
                var before = await NeighboursAsync(baseline, id, oldVector.Memory, options.K, exact: false, cancellationToken);
                var after = await NeighboursAsync(candidate, id, newVector.Memory, options.K, exact: false, cancellationToken);
                if (before.Count > 0)
                    overlaps.Add((double)after.Intersect(before, StringComparer.Ordinal).Count() / before.Count);
            }
            var (items, mean) = totals.GetValueOrDefault(modality);
            drift.Add(new ModalityDrift(modality, items, mean, overlaps.Count, options.K, overlaps.Count == 0 ? null : overlaps.Average()));
        }
        return drift;
    }

    /// <summary>Random stored vectors of a version (the same seed picks the same items): recall queries, and the saga's recompute sample.</summary>
    /// <param name="version">The version.</param>
    /// <param name="count">How many (fewer when the version holds fewer).</param>
    /// <param name="seed">Chooses the items.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <exception cref="SpaceVersionException">The version's table is gone.</exception>
    public async Task<IReadOnlyList<StoredVector>> SampleAsync(SpaceVersion version, int count, int seed, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var cmd = Command(connection, null, $"""
            SELECT e.media_id, m.modality, m.sha256, e.embedding
            FROM {SpaceVersionRows.Quote(version.TableName)} e JOIN media m ON m.id = e.media_id
            ORDER BY md5(e.media_id || $1) LIMIT $2
            """, seed.ToString(System.Globalization.CultureInfo.InvariantCulture), count);
        var list = new List<StoredVector>(count);
        await using var reader = await ReadAsync(cmd, version, cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            list.Add(new StoredVector(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetFieldValue<Vector>(3).Memory));
        return list;
    }

    private async Task<List<string>> NeighboursAsync(SpaceVersion version, string self, ReadOnlyMemory<float> query, int k, bool exact, CancellationToken ct)
    {
        var result = await search.SearchVersionAsync(version, query, Math.Min(k + 1, VectorSearch.MaxK), exact: exact, cancellationToken: ct);
        return result.Hits.Select(h => h.MediaId).Where(id => id != self).Take(k).ToList();
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? tx, string sql, params object[] args)
    {
        var cmd = new NpgsqlCommand(sql, connection, tx) { CommandTimeout = 0 };
        foreach (var arg in args)
            cmd.Parameters.Add(new() { Value = arg });
        return cmd;
    }

    private async Task<NpgsqlDataReader> ReadAsync(NpgsqlCommand cmd, SpaceVersion version, CancellationToken ct)
    {
        try
        {
            return await cmd.ExecuteReaderAsync(ct);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            throw await SpaceVersionLifecycle.VanishedAsync(dataSource, version);
        }
    }
}
