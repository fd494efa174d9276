using System.CommandLine;
using FreeBind.Persistence;
using FreeBind.Persistence.Migrations;
using Microsoft.Extensions.DependencyInjection;

namespace FreeBind.Consumers.Cli;

/// <summary><c>freebind migrate</c>: applies the SQL migrations (also done at start unless Persistence:MigrateOnStart=false).</summary>
internal static class MigrateCommand
{
    public static Command Build()
    {
        var command = new Command("migrate", "Apply the database migrations");
        command.SetAction((_, ct) => FreeBindCli.Guard(async () =>
        {
            using var host = CliHost.Build(builder => builder.AddPersistence());
            var applied = await host.Services.GetRequiredService<MigrationRunner>().ApplyAsync(ct);
            Console.WriteLine(applied.Count == 0 ? "database is up to date" : "applied: " + string.Join(", ", applied));
            return 0;
        }));
        return command;
    }
}
