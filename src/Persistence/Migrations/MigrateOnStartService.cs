using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FreeBind.Persistence.Migrations;

/// <summary>
/// Applies pending migrations before the other hosted services start, when
/// <see cref="PersistenceOptions.MigrateOnStart"/> is set, waiting for Postgres for at most
/// <see cref="PersistenceOptions.StartupTimeout"/>.
/// </summary>
internal sealed class MigrateOnStartService(MigrationRunner runner, IOptions<PersistenceOptions> options, ILogger<MigrateOnStartService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.MigrateOnStart)
            await DatabaseStartup.RunAsync(o.ConnectionString, o.StartupTimeout, logger, runner.ApplyAsync, cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
