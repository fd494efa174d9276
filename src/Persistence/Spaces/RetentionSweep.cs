using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace FreeBind.Persistence.Spaces;

/// <summary>
/// The schedule that drops retired versions once their retention ends
/// (<see cref="SpaceVersionLifecycle.DropExpiredAsync"/>) every <see cref="SpaceVersionOptions.SweepInterval"/>.
/// Hosted by a long-running process (the re-embedding host); several sweeping at once is safe. A
/// sweep that fails (Postgres away) is logged and tried again at the next interval.
/// </summary>
public sealed class RetentionSweep(SpaceVersionLifecycle lifecycle, IOptions<SpaceVersionOptions> options, ILogger<RetentionSweep> logger) : BackgroundService
{
    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SweepInterval);
        do
        {
            try
            {
                foreach (var version in await lifecycle.DropExpiredAsync(stoppingToken))
                    Log.RetainedVersionDropped(logger, version.Key, version.TableName);
            }
            catch (Exception e) when ((e is NpgsqlException or TimeoutException) && !stoppingToken.IsCancellationRequested)
            {
                Log.SweepFailed(logger, e.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
