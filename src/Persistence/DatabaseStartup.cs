using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polly;
using Polly.Retry;

namespace FreeBind.Persistence;

/// <summary>Postgres did not become reachable within <see cref="PersistenceOptions.StartupTimeout"/>.</summary>
/// <param name="message">One sentence naming the server and the last reason.</param>
/// <param name="inner">The last failure.</param>
public sealed class DatabaseUnavailableException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// Start-up against a database that may not be up yet (a deployment starting every service at once,
/// a failover): transient failures are retried with backoff for a bounded time, then reported in one sentence.
/// </summary>
public static class DatabaseStartup
{
    /// <summary>True for failures that mean "Postgres is not reachable (yet)", as Npgsql classifies them.</summary>
    /// <param name="exception">The failure.</param>
    public static bool IsUnavailable(Exception exception) => exception switch
    {
        NpgsqlException e => e.IsTransient,
        SocketException => true,
        TimeoutException => true,
        _ => exception.InnerException is { } inner && IsUnavailable(inner),
    };

    /// <summary>Runs <paramref name="action"/>, retrying while Postgres is unavailable, for at most <paramref name="timeout"/>.</summary>
    /// <param name="connectionString">Names the server in the error.</param>
    /// <param name="timeout">How long to keep trying.</param>
    /// <param name="logger">Logs each wait.</param>
    /// <param name="action">The start-up work (e.g. applying the migrations).</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <exception cref="DatabaseUnavailableException">Postgres was still unavailable when the time ran out.</exception>
    public static async Task<T> RunAsync<T>(string connectionString, TimeSpan timeout, ILogger logger, Func<CancellationToken, Task<T>> action,
        CancellationToken cancellationToken)
    {
        var started = TimeProvider.System.GetTimestamp();
        TimeSpan? logged = null;
        var pipeline = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e && IsUnavailable(e)
                                                        && TimeProvider.System.GetElapsedTime(started) < timeout),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(200),
            MaxDelay = TimeSpan.FromSeconds(5),
            OnRetry = args =>
            {
                // One line at once, then one every 10 s while the wait goes on.
                var elapsed = TimeProvider.System.GetElapsedTime(started);
                if (logged is null || elapsed - logged >= TimeSpan.FromSeconds(10))
                {
                    logged = elapsed;
                    Log.WaitingForDatabase(logger, args.AttemptNumber + 1, args.Outcome.Exception?.Message ?? "");
                }
                return ValueTask.CompletedTask;
            },
        }).Build();
        try
        {
            return await pipeline.ExecuteAsync(async token => await action(token), cancellationToken);
        }
        catch (Exception e) when (IsUnavailable(e) && !cancellationToken.IsCancellationRequested)
        {
            throw Unavailable(connectionString, timeout, e);
        }
    }

    /// <summary>The one-sentence failure of a start-up that waited <paramref name="timeout"/> for Postgres in vain.</summary>
    /// <param name="connectionString">Names the server.</param>
    /// <param name="timeout">How long it was waited for.</param>
    /// <param name="last">The last failure.</param>
    public static DatabaseUnavailableException Unavailable(string connectionString, TimeSpan timeout, Exception last)
    {
        var server = new NpgsqlConnectionStringBuilder(connectionString);
        return new DatabaseUnavailableException(
            $"Postgres at {server.Host}:{server.Port} is unreachable after {timeout.TotalSeconds:F0} s ({last.GetBaseException().Message}); start it, or check Persistence:ConnectionString",
            last);
    }
}
