using System.CommandLine;
using System.Globalization;
using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Reembedding;
using FreeBind.Persistence.Sagas;
using FreeBind.Persistence.Spaces;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace FreeBind.Consumers.Cli;

/// <summary><c>freebind spaces plan|publish</c>: what a space change would cost, and registering it so the saga re-embeds the archive.</summary>
internal static class SpacesPublishCommand
{
    /// <summary>Adds <c>plan</c> and <c>publish</c> to the <c>spaces</c> command.</summary>
    public static void AddTo(Command spaces)
    {
        spaces.Subcommands.Add(Plan());
        spaces.Subcommands.Add(Publish());
    }

    private static Command Plan()
    {
        var command = new Command("plan", "What changed against the active version, how many items are re-fused, re-encoded (per expert) or not retrievable, and how long it should take")
        {
            FreeBindCli.Space, FreeBindCli.Models, FreeBindCli.Preset, FreeBindCli.Factor,
        };
        command.SetAction((result, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            using var host = CliHost.Build(builder =>
            {
                builder.Configuration.AddInMemoryCollection(RunCommand.Overrides(result));
                builder.AddItemPipeline();
                builder.AddReembedding(ReembeddingRoles.Client);
            });
            var space = host.Services.GetRequiredService<FreeBind.Encoding.Spaces.ManifestCatalog>()
                .Load(result.GetValue(FreeBindCli.Space), result.GetValue(FreeBindCli.Models), FreeBindCli.Factors(result));
            var catalog = host.Services.GetRequiredService<SpaceCatalog>();
            var version = await catalog.GetAsync(space.Name, space.Version, ct)
                ?? new SpaceVersion(0, space.Name, space.Version, space.Dimension, SpaceVersionState.Building, "");
            var plan = await host.Services.GetRequiredService<ReembeddingPlanner>().PlanAsync(Guid.Empty, version, space, ct);
            var inv = CultureInfo.InvariantCulture;
            Console.WriteLine($"space     {space.Name}: {space.Version}" + (plan.PreviousDigest is null ? " (no other active version)" : $" against the active {plan.PreviousDigest}"));
            foreach (var change in plan.Changes) Console.WriteLine("change    " + change);
            Console.WriteLine($"items     {plan.Items.ToString("N0", inv)}");
            Console.WriteLine("plan      " + ReembedCommand.PlanLine(plan.Refuse, plan.ReencodeByExpert, plan.NotRetrievableByReason));
            // The estimate uses the rate the last finished run of this space measured (items/s while backfilling).
            var last = (await host.Services.GetRequiredService<SagaStore<ReembeddingRun>>().ListAsync(["Active", "RolledBack"], ct))
                .FirstOrDefault(r => r.Space == space.Name && r.Rate(r.FinishedAt ?? r.UpdatedAt) > 0);
            Console.WriteLine(last is null
                ? "estimate  no finished run of this space has measured a rate yet"
                : $"estimate  {TimeSpan.FromSeconds(plan.Items / last.Rate(last.FinishedAt ?? last.UpdatedAt)):hh\\:mm\\:ss} at the {last.Rate(last.FinishedAt ?? last.UpdatedAt).ToString("0.0", inv)} items/s of run {last.CorrelationId}" +
                  (plan.ReencodeByExpert.Count > 0 ? " (that run's mix of re-fusion and re-encode)" : ""));
            return 0;
        })));
        return command;
    }

    private static Command Publish()
    {
        var command = new Command("publish", "Register the space's new version and publish SpaceVersionPublished; the saga starts a run from it (Reembedding:StartOnPublish)")
        {
            FreeBindCli.Space, FreeBindCli.Models, FreeBindCli.Preset, FreeBindCli.Factor,
        };
        command.SetAction((result, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            using var host = CliHost.Build(builder =>
            {
                builder.Configuration.AddInMemoryCollection(RunCommand.Overrides(result));
                builder.AddItemPipeline();
                builder.AddReembedding(ReembeddingRoles.Client);
            });
            await host.StartAsync(ct);
            var (space, version) = await ReembedCommand.RegisterAsync(host, result, ct);
            await host.Services.GetRequiredService<IBus>().Publish(new SpaceVersionPublished(space.Name, space.Version, DateTimeOffset.UtcNow), ct);
            await host.StopAsync(ct);
            Console.WriteLine($"published {space.Name} v{version.Id} {space.Version}");
            Console.WriteLine($"run       {RunIds.For(space.Name, space.Version)} (follow it with: freebind reembed status RUN --watch)");
            return 0;
        })));
        return command;
    }
}
