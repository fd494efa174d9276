using FreeBind.Consumers.Ingestion;
using FreeBind.Consumers.Resilience;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace FreeBind.Consumers.Spaces;

/// <summary>
/// Keeps <see cref="WriteTargets"/> current while the worker runs: LISTENs on
/// <see cref="SpaceCatalog.ChangesChannel"/> (a trigger announces every change of
/// <c>space_versions</c>) and also re-reads every <see cref="IngestionOptions.TargetPollSeconds"/>,
/// so a notification missed while disconnected only delays a change.
/// </summary>
public sealed partial class TargetWatcher(
    WriteTargets targets, NpgsqlDataSource dataSource, IOptions<IngestionOptions> options, Retries retries,
    ILogger<TargetWatcher> logger) : BackgroundService
{
    /// <summary>
    /// Set when the worker cannot go on with its targets: the active version cannot be loaded
    /// (<see cref="TargetUnavailableException"/>), or re-reading them failed in a way nobody foresaw.
    /// </summary>
    public Exception? Fault { get; private set; }

    /// <summary>Raised once, when <see cref="Fault"/> is set; the worker stops on it.</summary>
    public event Action<Exception>? Failed;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var changed = new SemaphoreSlim(0);
        var listening = ListenAsync(changed, stop.Token);
        var poll = TimeSpan.FromSeconds(options.Value.TargetPollSeconds);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await changed.WaitAsync(poll, stoppingToken);
                while (changed.CurrentCount > 0) await changed.WaitAsync(stoppingToken); // fold a burst of notifications into one read
                if (Volatile.Read(ref _started) == 0) continue;
                await retries.Storage.ExecuteAsync(async token => await targets.RefreshAsync(token), stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // Outages are retried above and unloadable versions that are not active are refused by
            // WriteTargets; what reaches here means the targets can no longer be followed. A worker
            // that went on would write a set that no longer matches space_versions: stop it.
            Fault = e;
            Failed?.Invoke(e);
        }
        finally
        {
            await stop.CancelAsync();
            await listening;
        }
    }

    private int _started;

    /// <summary>Starts refreshing (after the worker loaded the first set).</summary>
    public void Begin() => Volatile.Write(ref _started, 1);

    // One LISTEN session after another, reconnected with the common backoff while Postgres is away;
    // meanwhile the poll keeps the targets current.
    private async Task ListenAsync(SemaphoreSlim changed, CancellationToken stoppingToken)
    {
        try
        {
            await retries.Listen.ExecuteAsync(async token =>
            {
                try
                {
                    await ListenOnceAsync(changed, token);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogListenLost(logger, e.Message);
                    throw;
                }
            }, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // Not an outage (e.g. LISTEN refused): the poll alone keeps the targets current.
            LogListenStopped(logger, Failures.Describe(e), options.Value.TargetPollSeconds);
        }
    }

    private async Task ListenOnceAsync(SemaphoreSlim changed, CancellationToken stoppingToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
        connection.Notification += (_, e) =>
        {
            if (e.Channel == SpaceCatalog.ChangesChannel && Volatile.Read(ref _started) == 1 && e.Payload == targets.Space)
                changed.Release();
        };
        await using (var listen = new NpgsqlCommand($"LISTEN {SpaceCatalog.ChangesChannel}", connection))
            await listen.ExecuteNonQueryAsync(stoppingToken);
        changed.Release(); // anything may have changed while we were not listening
        LogListening(logger, SpaceCatalog.ChangesChannel);
        while (true) await connection.WaitAsync(stoppingToken);
    }

    [LoggerMessage(EventId = 5012, Level = LogLevel.Error, Message = "Space version notifications stopped ({Reason}); the write targets are re-read every {Seconds} s only")]
    private static partial void LogListenStopped(ILogger logger, string reason, int seconds);

    [LoggerMessage(EventId = 5010, Level = LogLevel.Debug, Message = "Listening on {Channel} for space version changes")]
    private static partial void LogListening(ILogger logger, string channel);

    [LoggerMessage(EventId = 5011, Level = LogLevel.Warning, Message = "Space version notifications interrupted ({Reason}); polling until they resume")]
    private static partial void LogListenLost(ILogger logger, string reason);
}
