using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace FreeBind.Persistence.Spaces;

/// <summary>
/// Builds the HNSW cosine index of a version's table after a bulk load: <c>CREATE INDEX CONCURRENTLY</c>
/// (live dual-writes into the table go on meanwhile) with <see cref="SpaceVersionOptions.IndexBuildMemoryMb"/>
/// and <see cref="SpaceVersionOptions.IndexBuildWorkers"/>.
/// </summary>
public sealed class SpaceIndexBuilder(NpgsqlDataSource dataSource, IOptions<SpaceVersionOptions> options, ILogger<SpaceIndexBuilder> logger)
{
    /// <summary>
    /// Makes sure the version's table has a valid HNSW index, building it if missing. An invalid index
    /// left by an interrupted build is dropped and built again; concurrent callers for one version
    /// wait for each other, so the index is built once. Takes as long as the build (no command timeout).
    /// CREATE INDEX CONCURRENTLY waits for transactions older than it, anywhere in the database, to end:
    /// never call it while the caller itself holds a transaction open on this database (it would wait for itself).
    /// </summary>
    /// <param name="version">A version with a table.</param>
    /// <param name="cancellationToken">Cancels the build (an interrupted build is cleaned up by the next call).</param>
    /// <returns>True when this call built the index, false when a valid one was already there.</returns>
    /// <exception cref="SpaceVersionException">The version's table is gone.</exception>
    public async Task<bool> BuildAsync(SpaceVersion version, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(version);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var lockKey = "freebind.index:" + version.TableName;
        // Polled, not waited for in SQL: a session blocked in pg_advisory_lock holds a snapshot, and
        // CREATE INDEX CONCURRENTLY waits for every older snapshot, so the two would deadlock.
        while (!await TryLockAsync(connection, lockKey, cancellationToken))
            await Task.Delay(LockPoll, cancellationToken);
        try
        {
            var state = await IndexStateAsync(connection, version, cancellationToken);
            if (state == IndexState.TableMissing)
                throw SpaceVersionLifecycle.EndedError(await SpaceVersionRows.FindAsync(connection, null, "id = $1", [version.Id], cancellationToken) ?? version);
            if (state == IndexState.Valid)
                return false;
            if (state == IndexState.Invalid)
                await ExecuteAsync(connection, $"DROP INDEX CONCURRENTLY IF EXISTS {SpaceVersionRows.Quote(IndexName(version))}", cancellationToken);

            var o = options.Value;
            await ExecuteAsync(connection, $"SET maintenance_work_mem = '{o.IndexBuildMemoryMb.ToString(CultureInfo.InvariantCulture)}MB'", cancellationToken);
            await ExecuteAsync(connection, $"SET max_parallel_maintenance_workers = {o.IndexBuildWorkers.ToString(CultureInfo.InvariantCulture)}", cancellationToken);
            var started = Stopwatch.GetTimestamp();
            await ExecuteAsync(connection, IndexDdl(version, concurrently: true), cancellationToken);
            Log.IndexBuilt(logger, version.Key, version.TableName, Stopwatch.GetElapsedTime(started).TotalSeconds);
            return true;
        }
        finally
        {
            // The pool resets a returned connection too; leave nothing behind regardless. A broken
            // connection has ended its session, which released the lock.
            if (connection.FullState == System.Data.ConnectionState.Open)
            {
                await ExecuteAsync(connection, "RESET maintenance_work_mem", CancellationToken.None);
                await ExecuteAsync(connection, "RESET max_parallel_maintenance_workers", CancellationToken.None);
                await ExecuteAsync(connection, "SELECT pg_advisory_unlock(hashtext($1))", CancellationToken.None, lockKey);
            }
        }
    }

    /// <summary>True when the version's table has a valid (completely built) HNSW index.</summary>
    /// <param name="version">The version.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<bool> IsValidAsync(SpaceVersion version, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await IndexStateAsync(connection, version, cancellationToken) == IndexState.Valid;
    }

    internal enum IndexState { TableMissing, Missing, Invalid, Valid }

    private static readonly TimeSpan LockPoll = TimeSpan.FromMilliseconds(250);

    private static async Task<bool> TryLockAsync(NpgsqlConnection connection, string key, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtext($1))", connection);
        cmd.Parameters.Add(new() { Value = key });
        return (bool)(await cmd.ExecuteScalarAsync(ct))!;
    }

    internal static string IndexName(SpaceVersion version) => version.TableName + "_hnsw";

    internal static string IndexDdl(SpaceVersion version, bool concurrently) =>
        $"CREATE INDEX {(concurrently ? "CONCURRENTLY " : "")}IF NOT EXISTS {SpaceVersionRows.Quote(IndexName(version))} " +
        $"ON {SpaceVersionRows.Quote(version.TableName)} USING hnsw (embedding vector_cosine_ops)";

    internal static async Task<IndexState> IndexStateAsync(NpgsqlConnection connection, SpaceVersion version, CancellationToken ct, NpgsqlTransaction? tx = null)
    {
        await using var cmd = new NpgsqlCommand("""
            SELECT to_regclass($1) IS NOT NULL,
                   (SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($2) AND i.indrelid = to_regclass($1))
            """, connection, tx);
        cmd.Parameters.Add(new() { Value = SpaceVersionRows.Quote(version.TableName) });
        cmd.Parameters.Add(new() { Value = SpaceVersionRows.Quote(IndexName(version)) });
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        if (!reader.GetBoolean(0)) return IndexState.TableMissing;
        if (reader.IsDBNull(1)) return IndexState.Missing;
        return reader.GetBoolean(1) ? IndexState.Valid : IndexState.Invalid;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken ct, params object[] args)
    {
        await using var cmd = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        foreach (var arg in args)
            cmd.Parameters.Add(new() { Value = arg });
        await cmd.ExecuteNonQueryAsync(ct);
    }
}
