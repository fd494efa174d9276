using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Persistence.Sagas;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Reembedding;

/// <summary>
/// Nudges runs that have waited longer than Reembedding:WatchdogInterval: the command they wait for
/// may have been lost when a process died between storing the state and publishing it, so the
/// saga re-issues it (every step is idempotent). Runs in each saga host; duplicates are harmless.
/// </summary>
public sealed partial class ReembeddingWatchdog(
    SagaStore<ReembeddingRun> runs, IBus bus, IOptions<ReembeddingOptions> options, ILogger<ReembeddingWatchdog> logger) : BackgroundService
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Watchdog could not check the runs: {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string reason);
}
