using System.CommandLine;
using System.Diagnostics.Metrics;
using FreeBind.Consumers.Demo;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Ingestion;
using FreeBind.Persistence;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind demo</c>: the whole main job on embedded defaults, in the demo's own database
/// (<see cref="DemoDatabase"/>). First <see cref="DemoStream"/>: the sample media streamed through an
/// in-process Kafka into the worker, each item's tags and neighbours printed. Then
/// <see cref="DemoSpaceUpdate"/>: another preset published, the re-embedding saga re-embeds, verifies
/// and cuts over, and a few items' neighbours are printed before and after. Needs Postgres and Redis
/// (scripts/demo.sh starts them).
/// </summary>
internal static class DemoCommand
{
    /// <summary>The command.</summary>
    /// <param name="configure">More registrations after the demo's own (the tests break a step here).</param>
    public static Command Build(Action<HostApplicationBuilder>? configure = null)
    {
        var media = new Option<DirectoryInfo>("--media") { Description = "Folder with the sample media (BBQ/toilet/train .jpeg and .wav)", Required = true };
        var switchTo = new Option<string>("--switch-to")
        {
            Description = "Preset the space update switches to after streaming (none: skip the update)",
            DefaultValueFactory = _ => "at-expertise",
        };
        var command = new Command("demo",
            "Stream the sample media through an embedded Kafka into the worker and print tags and neighbours; then switch the preset, re-embed, cut over and print neighbours before and after")
        {
            FreeBindCli.Space, FreeBindCli.Models, media, switchTo,
        };
        command.SetAction((result, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            var folder = result.GetValue(media)!.FullName;
            using var host = CliHost.Build(builder =>
            {
                builder.Configuration.AddInMemoryCollection(RunCommand.Overrides(result));
                builder.AddDemo(folder);
                configure?.Invoke(builder);
            });
            var persistence = host.Services.GetRequiredService<IOptions<PersistenceOptions>>().Value;
            var database = await DemoDatabase.RecreateAsync(persistence, host.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(DemoDatabase)), ct);
            using var progress = new IngestionMetricsListener(host.Services.GetRequiredService<IMeterFactory>());
            await host.StartAsync(ct);
            try
            {
                var active = await new DemoStream(host, progress).RunAsync(folder, database, ct);
                var preset = result.GetValue(switchTo)!;
                if (preset == "none")
                    Console.WriteLine("\n(space update skipped: --switch-to none)");
                else if (!active.Definition.Manifest.Presets.ContainsKey(preset))
                    Console.WriteLine($"\n(space update skipped: space {active.Definition.Name} has no preset '{preset}'" +
                                      (active.Definition.Manifest.Presets.Count > 0 ? $"; its presets: {string.Join(", ", active.Definition.Manifest.Presets.Keys)})" : ")"));
                else
                    await new DemoSpaceUpdate(host).RunAsync(active, preset, ct);
            }
            finally
            {
                // Also when a step failed: the hosted services end as on a requested stop, not torn down by Dispose.
                await host.StopAsync(CancellationToken.None);
            }
            return 0;
        })));
        return command;
    }
}
