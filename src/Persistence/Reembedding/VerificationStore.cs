using Npgsql;

namespace FreeBind.Persistence.Reembedding;

/// <summary>
/// Stores and reads a run's verify report (<c>reembed_verifications</c>, <c>reembed_drift</c>, migration 3).
/// A version can be marked ready only with a stored report that passed.
/// </summary>
public sealed class VerificationStore(NpgsqlDataSource dataSource)
{
    /// <summary>Stores the report of a run, replacing an earlier one of the same run (a repeated gate). Idempotent.</summary>
    /// <param name="report">The report.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns>Whether the stored report passed (the database's own evaluation of the gate).</returns>
    public async Task<bool> SaveAsync(VerifyReport report, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(report);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        bool passed;
        await using (var cmd = new NpgsqlCommand("""
            INSERT INTO reembed_verifications AS t (run_id, version_id, baseline_version_id, live_items, covered, failed, missing, missing_sample,
                recall_queries, recall_k, recall, recall_min, recall_required, sample_items, sample_mismatches, sample_max_error)
            VALUES (@run, @version, @baseline, @live, @covered, @failed, @missing, @missing_sample, @queries, @k, @recall, @recall_min, @required,
                @sample_items, @sample_mismatches, @sample_max_error)
            ON CONFLICT (run_id) DO UPDATE SET version_id = excluded.version_id, baseline_version_id = excluded.baseline_version_id,
                live_items = excluded.live_items, covered = excluded.covered, failed = excluded.failed, missing = excluded.missing, missing_sample = excluded.missing_sample,
                recall_queries = excluded.recall_queries, recall_k = excluded.recall_k, recall = excluded.recall,
                recall_min = excluded.recall_min, recall_required = excluded.recall_required, sample_items = excluded.sample_items,
                sample_mismatches = excluded.sample_mismatches, sample_max_error = excluded.sample_max_error, verified_at = now()
            RETURNING passed
            """, connection, tx))
        {
            var p = cmd.Parameters;
            p.AddWithValue("run", report.RunId);
            p.AddWithValue("version", report.VersionId);
            p.AddWithValue("baseline", (object?)report.BaselineVersionId ?? DBNull.Value).NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer;
            p.AddWithValue("live", report.Coverage.LiveItems);
            p.AddWithValue("covered", report.Coverage.Covered);
            p.AddWithValue("failed", report.Coverage.Failed);
            p.AddWithValue("missing", report.Coverage.Missing);
            p.AddWithValue("missing_sample", report.Coverage.MissingSample.ToArray());
            p.AddWithValue("queries", report.Recall.Queries);
            p.AddWithValue("k", report.Recall.K);
            p.AddWithValue("recall", NullableDouble(report.Recall.Recall)).NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Double;
            p.AddWithValue("recall_min", NullableDouble(report.Recall.MinRecall)).NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Double;
            p.AddWithValue("required", report.Recall.Required);
            p.AddWithValue("sample_items", (object?)report.Sample?.Items ?? DBNull.Value).NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer;
            p.AddWithValue("sample_mismatches", (object?)report.Sample?.Mismatches ?? DBNull.Value).NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer;
            p.AddWithValue("sample_max_error", NullableDouble(report.Sample?.MaxError)).NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Double;
            passed = (bool)(await cmd.ExecuteScalarAsync(cancellationToken))!;
        }
        await using (var batch = new NpgsqlBatch(connection, tx))
        {
            var delete = new NpgsqlBatchCommand("DELETE FROM reembed_drift WHERE run_id = $1");
            delete.Parameters.Add(new() { Value = report.RunId });
            batch.BatchCommands.Add(delete);
            foreach (var d in report.Drift)
            {
                var insert = new NpgsqlBatchCommand(
                    "INSERT INTO reembed_drift (run_id, modality, items, mean_cosine, queries, top_k, top_k_overlap) VALUES ($1, $2, $3, $4, $5, $6, $7)");
                insert.Parameters.Add(new() { Value = report.RunId });
                insert.Parameters.Add(new() { Value = d.Modality });
                insert.Parameters.Add(new() { Value = d.Items });
                insert.Parameters.Add(new() { Value = NullableDouble(d.MeanCosine), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Double });
                insert.Parameters.Add(new() { Value = d.Queries });
                insert.Parameters.Add(new() { Value = d.K });
                insert.Parameters.Add(new() { Value = NullableDouble(d.TopKOverlap), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Double });
                batch.BatchCommands.Add(insert);
            }
            await batch.ExecuteNonQueryAsync(cancellationToken);
        }
        await tx.CommitAsync(cancellationToken);
        return passed;
    }

    /// <summary>The stored report of a run, or null when its gate has not run.</summary>
    /// <param name="runId">The run.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public async Task<VerifyReport?> GetAsync(Guid runId, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        var drift = new List<ModalityDrift>();
        await using (var cmd = new NpgsqlCommand(
            "SELECT modality, items, mean_cosine, queries, top_k, top_k_overlap FROM reembed_drift WHERE run_id = $1 ORDER BY modality", connection, tx))
        {
            cmd.Parameters.Add(new() { Value = runId });
            await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
                drift.Add(new ModalityDrift(reader.GetString(0), reader.GetInt64(1), Double(reader, 2), reader.GetInt32(3), reader.GetInt32(4), Double(reader, 5)));
        }
        await using (var cmd = new NpgsqlCommand("""
            SELECT version_id, baseline_version_id, live_items, covered, failed, missing, missing_sample, recall_queries, recall_k, recall, recall_min,
                   recall_required, sample_items, sample_mismatches, sample_max_error, verified_at
            FROM reembed_verifications WHERE run_id = $1
            """, connection, tx))
        {
            cmd.Parameters.Add(new() { Value = runId });
            await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
                return null;
            var sample = reader.IsDBNull(12) ? null : new SampleCheck(reader.GetInt32(12), reader.GetInt32(13), Double(reader, 14) ?? 0);
            return new VerifyReport(runId, reader.GetInt32(0), reader.IsDBNull(1) ? null : reader.GetInt32(1),
                new CoverageReport(reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5), reader.GetFieldValue<string[]>(6)),
                new RecallReport(reader.GetInt32(7), reader.GetInt32(8), Double(reader, 9), Double(reader, 10), reader.GetDouble(11)),
                sample, drift)
            {
                VerifiedAt = reader.GetFieldValue<DateTimeOffset>(15),
            };
        }
    }

    private static object NullableDouble(double? value) => value is { } v ? v : DBNull.Value;

    private static double? Double(NpgsqlDataReader reader, int i) => reader.IsDBNull(i) ? null : reader.GetDouble(i);
}
