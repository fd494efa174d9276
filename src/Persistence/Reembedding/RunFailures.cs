using Npgsql;

namespace FreeBind.Persistence.Reembedding;

/// <summary>
/// The items a re-embedding run could not write, each with a reason (<c>reembed_failures</c>): counted
/// by the verify gate's coverage as accounted for, and shown by reason in <c>reembed status</c>.
/// </summary>
public sealed class RunFailures(NpgsqlDataSource dataSource)
{
    /// <summary>Lists failures of a run; an item listed again keeps its latest reason. Idempotent.</summary>
    /// <param name="runId">The run.</param>
    /// <param name="failures">The failed items.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    public async Task RecordAsync(Guid runId, IReadOnlyCollection<ItemFailure> failures, CancellationToken cancellationToken = default)
    {
        if (failures.Count == 0)
            return;
        var latest = failures.GroupBy(f => f.MediaId, StringComparer.Ordinal).Select(g => g.Last()).OrderBy(f => f.MediaId, StringComparer.Ordinal).ToList();
        await using var cmd = dataSource.CreateCommand("""
            INSERT INTO reembed_failures AS t (run_id, media_id, reason, detail)
            SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])
            ON CONFLICT (run_id, media_id) DO UPDATE SET reason = excluded.reason, detail = excluded.detail, recorded_at = now()
            WHERE (t.reason, t.detail) IS DISTINCT FROM (excluded.reason, excluded.detail)
            """);
        cmd.Parameters.Add(new() { Value = runId });
        cmd.Parameters.Add(new() { Value = latest.Select(f => f.MediaId).ToArray() });
        cmd.Parameters.Add(new() { Value = latest.Select(f => f.Reason).ToArray() });
        cmd.Parameters.Add(new() { Value = latest.Select(f => f.Detail).ToArray() });
        await cmd.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Failures of a run by reason.</summary>
    /// <param name="runId">The run.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    public async Task<IReadOnlyDictionary<string, long>> CountByReasonAsync(Guid runId, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand("SELECT reason, count(*) FROM reembed_failures WHERE run_id = $1 GROUP BY reason ORDER BY reason");
        cmd.Parameters.Add(new() { Value = runId });
        var counts = new SortedDictionary<string, long>(StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            counts[reader.GetString(0)] = reader.GetInt64(1);
        return counts;
    }

    /// <summary>A page of a run's failures, by media id.</summary>
    /// <param name="runId">The run.</param>
    /// <param name="after">Keyset: the last id of the previous page; null to start.</param>
    /// <param name="limit">Failures per page.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    public async Task<IReadOnlyList<ItemFailure>> ListAsync(Guid runId, string? after, int limit, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand(
            "SELECT media_id, reason, detail FROM reembed_failures WHERE run_id = $1 AND ($2::text IS NULL OR media_id > $2) ORDER BY media_id LIMIT $3");
        cmd.Parameters.Add(new() { Value = runId });
        cmd.Parameters.Add(new() { Value = (object?)after ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        cmd.Parameters.Add(new() { Value = limit });
        var list = new List<ItemFailure>();
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            list.Add(new ItemFailure(reader.GetString(0), reader.GetString(1), reader.GetString(2)));
        return list;
    }
}
