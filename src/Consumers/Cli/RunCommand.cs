using System.CommandLine;
using FreeBind.Consumers.Ingestion;
using FreeBind.Persistence;
using Microsoft.Extensions.Hosting;

namespace FreeBind.Consumers.Cli;

/// <summary><c>freebind run</c>: the ingestion worker, until SIGTERM/Ctrl+C (graceful: in-flight work is finished first).</summary>
internal static class RunCommand
{
    public static Command Build()
    {
        var command = new Command("run", "Consume media events from Kafka and embed them into the configured space (settings: appsettings.json, environment)");
        command.SetAction((_, ct) => FreeBindCli.Guard(async () =>
        {
            using var host = CliHost.Build(builder =>
            {
                builder.AddPersistence();
                builder.AddIngestion();
            });
            await host.RunAsync(ct);
            return 0;
        }));
        return command;
    }
}
