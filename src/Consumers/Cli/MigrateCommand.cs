using System.CommandLine;
using FreeBind.Persistence;
using FreeBind.Persistence.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind migrate</c>: applies the SQL migrations (also done at start unless
/// Persistence:MigrateOnStart=false), waiting for Postgres at most Persistence:StartupTimeout.
/// </summary>
internal static class MigrateCommand
{
    public static Command Build()
    {
        var command = new Command("migrate", "Apply the database migrations");
        command.SetAction((_, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            using var host = CliHost.Build(builder => builder.AddPersistence());
            var options = host.Services.GetRequiredService<IOptions<PersistenceOptions>>().Value;
            var runner = host.Services.GetRequiredService<MigrationRunner>();
            var applied = await DatabaseStartup.RunAsync(options.ConnectionString, options.StartupTimeout,
                host.Services.GetRequiredService<ILogger<MigrationRunner>>(), runner.ApplyAsync, ct);
            Console.WriteLine(applied.Count == 0 ? "database is up to date" : "applied: " + string.Join(", ", applied));
            return 0;
        })));
        return command;
    }
}
