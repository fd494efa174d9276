using Npgsql;

namespace FreeBind.Persistence.Reembedding;

/// <summary>
/// One worker at a time per long step of a run (plan, verify): a Postgres session advisory lock held
/// on a connection of its own for as long as the step runs. A repeat of the command (the watchdog
/// nudges a run whose step is merely slow) finds the lock taken and leaves the work to its holder;
/// if the holder dies, its session ends, the lock goes with it, and the next nudge does the step.
/// </summary>
public sealed class RunStepLocks(NpgsqlDataSource dataSource)
{
    /// <summary>Takes the lock of <paramref name="step"/> of <paramref name="runId"/>, or returns null when another session holds it.</summary>
    /// <param name="runId">The run.</param>
    /// <param name="step">The step's name.</param>
    /// <param name="cancellationToken">Cancels the attempt.</param>
    /// <returns>The held lock (dispose to release it), or null.</returns>
    public async Task<IAsyncDisposable?> TryAcquireAsync(Guid runId, string step, CancellationToken cancellationToken = default)
    {
        var key = $"freebind-run-step:{runId:N}:{step}";
        var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            await using var cmd = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", connection);
            cmd.Parameters.Add(new() { Value = key });
            if (await cmd.ExecuteScalarAsync(cancellationToken) is true)
                return new Held(connection, key);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
        await connection.DisposeAsync();
        return null;
    }

    private sealed class Held(NpgsqlConnection connection, string key) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                // Released explicitly: a pooled connection keeps its session (and the lock) when closed.
                await using var cmd = new NpgsqlCommand("SELECT pg_advisory_unlock(hashtextextended($1, 0))", connection);
                cmd.Parameters.Add(new() { Value = key });
                await cmd.ExecuteScalarAsync();
            }
            catch (NpgsqlException)
            {
                // The session is gone (Postgres restarted): so is the lock.
            }
            finally
            {
                await connection.DisposeAsync();
            }
        }
    }
}
