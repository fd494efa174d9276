using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Persistence.Sagas;
using FreeBind.Persistence.Spaces;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Reembedding;

/// <summary>
/// Every Reembedding:WatchdogInterval: nudges runs that have waited longer than that (the command
/// they wait for may have been lost when a process died between storing the state and publishing
/// it, so the saga re-issues it; every step is idempotent), and drops retired versions whose
/// retention (SpaceVersions:Retention, default 7 days) has ended. Runs in each saga host; the
/// database is the schedule's memory, so a restart misses nothing and two hosts do no harm.
/// </summary>
public sealed partial class ReembeddingWatchdog(
    SagaStore<ReembeddingRun> runs, SpaceVersionLifecycle lifecycle, IBus bus, IOptions<ReembeddingOptions> options, ILogger<ReembeddingWatchdog> logger)
    : BackgroundService
{
    private static readonly string[] Waiting = ["Planning", "Backfilling", "Verifying", "Activating", "Cancelling", "Failing", "RollingBack"];

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.WatchdogInterval;
        using var timer = new PeriodicTimer(interval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                foreach (var run in await runs.ListAsync(Waiting, stoppingToken))
                    if (DateTimeOffset.UtcNow - run.UpdatedAt >= interval)
                    {
                        LogNudge(logger, run.CorrelationId, run.CurrentState);
                        await bus.Publish(new ReembeddingTick(run.CorrelationId), stoppingToken);
                    }
                foreach (var dropped in await lifecycle.DropExpiredAsync(stoppingToken))
                    LogDropped(logger, dropped.Key);
            }
            catch (Exception e) when (e is Npgsql.NpgsqlException or MassTransitException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                // Postgres or the broker is away: the next tick tries again.
                LogUnavailable(logger, e.Message);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} waited in {State} longer than the watchdog interval; nudging it")]
    private static partial void LogNudge(ILogger logger, Guid runId, string state);

    [LoggerMessage(Level = LogLevel.Information, Message = "Retention of {Version} ended: its table is dropped (a rollback to it is no longer possible)")]
    private static partial void LogDropped(ILogger logger, string version);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Watchdog could not check the runs: {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string reason);
}
