using System.CommandLine;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Ingestion;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind run</c>: the ingestion worker, until SIGTERM/Ctrl+C (graceful: in-flight work is
/// finished first). Exit code 0 after a requested stop; 1 when a setting is wrong, a dependency
/// stayed unreachable at start, or the worker had to stop on its own (one line on stderr says why).
/// </summary>
internal static class RunCommand
{
    public static Command Build()
    {
        var command = new Command("run", "Consume media events from Kafka and embed them into the configured space (settings: appsettings.json, environment)")
        {
            FreeBindCli.Space, FreeBindCli.Models,
        };
        command.SetAction((result, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            using var host = CliHost.Build(builder =>
            {
                builder.Configuration.AddInMemoryCollection(Overrides(result));
                builder.AddIngestionWorker();
            });
            var worker = host.Services.GetRequiredService<IngestionWorker>(); // RunAsync disposes the host's services
            await host.RunAsync(ct);
            return worker.Fault is null ? 0 : 1;
        })));
        return command;
    }

    /// <summary>The settings <c>--space</c> and <c>--models</c> stand for (<c>Ingestion:Space</c>, <c>Spaces:ModelRoot</c>).</summary>
    public static Dictionary<string, string?> Overrides(ParseResult result)
    {
        var settings = new Dictionary<string, string?>();
        if (result.GetValue(FreeBindCli.Space) is { } space) settings["Ingestion:Space"] = space;
        if (result.GetValue(FreeBindCli.Models) is { } models) settings["Spaces:ModelRoot"] = Path.GetFullPath(models);
        return settings;
    }
}
