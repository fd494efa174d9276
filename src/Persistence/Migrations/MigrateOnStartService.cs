using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FreeBind.Persistence.Migrations;

/// <summary>Applies pending migrations before the other hosted services start, when <see cref="PersistenceOptions.MigrateOnStart"/> is set.</summary>
internal sealed class MigrateOnStartService(MigrationRunner runner, IOptions<PersistenceOptions> options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Value.MigrateOnStart)
            await runner.ApplyAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
