using System.Diagnostics;
using System.Globalization;
using FreeBind.Consumers.Cli;
using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Consumers.Reembedding;
using FreeBind.Consumers.Spaces;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Sagas;
using FreeBind.Persistence.Search;
using FreeBind.Persistence.Spaces;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Demo;

/// <summary>A demo step that did not work out, in one sentence a user can act on.</summary>
/// <param name="message">The sentence.</param>
public sealed class DemoException(string message) : Exception(message);

/// <summary>The versions before and after a space update, and the run that made it.</summary>
/// <param name="Before">The version that was active (now retired and retained for rollback).</param>
/// <param name="After">The version the run built and cut over to.</param>
/// <param name="RunId">The re-embedding run.</param>
public sealed record SpaceUpdate(SpaceVersion Before, SpaceVersion After, Guid RunId);

/// <summary>
/// The demo's space update, as a platform team does it under live traffic: another preset of the
/// active version's space is registered and published (<c>freebind spaces publish</c>); the
/// re-embedding saga — the state machine, workers and Postgres saga store of <c>freebind reembed
/// host</c>, here on the in-memory transport — starts a run from it, plans, backfills (a pure
/// re-fusion from the stored atoms), verifies and stops at ready; the demo then cuts over as
/// <c>freebind reembed cutover</c> does. Each phase is printed as the saga store shows it.
/// </summary>
internal sealed class DemoSpaceUpdate(IHost host)
{
    // A run that shows no change for this long is reported, not waited for. Failing steps end the run
    // themselves (the saga fails it); this bounds the rest, with room for a verify gate that recomputes
    // its sample with full-size encoders on a CPU (FREEBIND_MODELS).
    private static readonly TimeSpan Stall = TimeSpan.FromMinutes(10);

    // One query item per modality for the before/after neighbours.
    private static readonly string[] Queries = ["BBQ.wav", "an audio of barbeque", "BBQ.jpeg"];

    private readonly IServiceProvider _services = host.Services;

    /// <summary>
    /// Switches <paramref name="active"/>'s space to <paramref name="preset"/>, re-embeds and cuts over,
    /// then prints the neighbours of one item per modality in the old and the new version.
    /// </summary>
    /// <param name="active">The active version, as the worker serves it.</param>
    /// <param name="preset">The preset of the new version.</param>
    /// <param name="ct">Cancels the update.</param>
    /// <exception cref="DemoException">The run failed, was refused or stalled (the active version is then unchanged).</exception>
    public async Task<SpaceUpdate> RunAsync(SpaceTarget active, string preset, CancellationToken ct)
    {
        Console.WriteLine($"\n== space update: {active.Definition.Name} switched to the preset {preset}, re-embedded, verified and cut over by the re-embedding saga (in-memory transport)");
        var update = await ReembedAsync(active, preset, ct);

        Console.WriteLine($"\n== nearest neighbours before (v{update.Before.Id}, the replaced version) and after (v{update.After.Id}, now served) the cut-over");
        var store = _services.GetRequiredService<EmbeddingStore>();
        var search = _services.GetRequiredService<VectorSearch>();
        foreach (var id in Queries)
        {
            var old = await store.GetEmbeddingAsync(update.Before, id, ct) ?? throw new DemoException($"{id} is missing from v{update.Before.Id}");
            var fresh = await store.GetEmbeddingAsync(update.After, id, ct) ?? throw new DemoException($"{id} is missing from v{update.After.Id}");
            var before = await search.SearchVersionAsync(update.Before, old, 4, "demo", cancellationToken: ct);
            var after = await search.SearchAsync(update.After.Space, fresh, 4, "demo", ct);
            if (after.VersionId != update.After.Id)
                throw new DemoException($"freebind_search answered from v{after.VersionId}, not the new active v{update.After.Id}");
            Console.WriteLine($"{id,-22} v{update.Before.Id,-3} {DemoStream.Hits(before.Hits.Where(h => h.MediaId != id))}");
            Console.WriteLine($"{"",-22} v{update.After.Id,-3} {DemoStream.Hits(after.Hits.Where(h => h.MediaId != id))}");
        }
        return update;
    }

    private async Task<SpaceUpdate> ReembedAsync(SpaceTarget active, string preset, CancellationToken ct)
    {
        var inv = CultureInfo.InvariantCulture;
        var manifests = _services.GetRequiredService<ManifestCatalog>();
        var next = manifests.Load(active.Definition.Manifest.Name, factors: FactorSelection.Parse(preset, []));
        if (next.Version == active.Version.Digest)
            throw new DemoException($"the preset '{preset}' gives the active version {active.Definition.ShortVersion} itself; pick another with --switch-to");
        var (space, version) = await ReembedCommand.RegisterAsync(host, next, ct);
        var id = RunIds.For(space.Name, space.Version);
        var clock = Stopwatch.StartNew();
        await _services.GetRequiredService<IBus>().Publish(new SpaceVersionPublished(space.Name, space.Version, DateTimeOffset.UtcNow), ct);
        Console.WriteLine($"published   v{version.Id} {space.ShortVersion} (preset {preset}) beside the active v{active.Version.Id} {active.Definition.ShortVersion}; the saga starts run {id}");

        var runs = _services.GetRequiredService<SagaStore<ReembeddingRun>>();
        string? shown = null;
        var lastChange = clock.Elapsed;
        var progress = (State: "", Done: -1L);
        var cutOverSent = false;
        while (true)
        {
            var run = await runs.LoadAsync(id, ct);
            if (run is not null)
            {
                if ((run.CurrentState, run.Done) != progress)
                {
                    progress = (run.CurrentState, run.Done);
                    lastChange = clock.Elapsed;
                }
                if (run.CurrentState != shown)
                {
                    if (shown is "Planning" or null && run.CurrentState is not ("Planning" or "Refused" or "Failed" or "Failing"))
                        PrintPlan(run);
                    shown = run.CurrentState;
                    Console.WriteLine($"{clock.Elapsed.TotalSeconds.ToString("0.0", inv),6} s    {run.CurrentState.ToLowerInvariant(),-12} {Detail(run)}".TrimEnd());
                }
                switch (run.CurrentState)
                {
                    case "Ready" when !cutOverSent:
                        await PrintGateAsync(id, ct);
                        await _services.GetRequiredService<IBus>().Publish(new CutOverReembedding(id), ct);
                        cutOverSent = true;
                        break;
                    case "Ready" when run.Reason is not null:
                        // Back from activating: the cut-over transaction refused (the saga keeps the run ready).
                        throw new DemoException($"the cut-over of run {id} was refused: {run.Reason}; v{active.Version.Id} stays active");
                    case "Active":
                        var before = await _services.GetRequiredService<SpaceCatalog>().GetAsync(active.Version.Id, ct)
                            ?? throw new DemoException($"the replaced version v{active.Version.Id} vanished after the cut-over");
                        var after = await _services.GetRequiredService<SpaceCatalog>().GetActiveAsync(space.Name, ct);
                        if (after?.Id != version.Id)
                            throw new DemoException($"run {id} ended active but the active version of '{space.Name}' is v{after?.Id}, not v{version.Id}");
                        var retention = _services.GetRequiredService<IOptions<SpaceVersionOptions>>().Value.Retention;
                        Console.WriteLine($"cut over    v{after.Id} now serves '{space.Name}' (freebind_search answers from it); v{before.Id} is {before.State.ToString().ToLowerInvariant()}, " +
                                          $"kept {retention.TotalDays.ToString("0.#", inv)} days for `freebind reembed rollback {space.Name}`");
                        return new SpaceUpdate(before, after, id);
                    case "Refused" or "Failed" or "Cancelled":
                        throw new DemoException($"the re-embedding run {id} {run.CurrentState.ToLowerInvariant()}: {run.Reason ?? "no reason given"}; " +
                                                (run.CurrentState == "Refused" ? "" : $"its version v{version.Id} was dropped and ") + $"v{active.Version.Id} stays active");
                }
            }
            if (clock.Elapsed - lastChange > Stall)
                throw new DemoException($"the re-embedding run {id} made no progress for {Stall.TotalMinutes} minutes (phase {run?.CurrentState.ToLowerInvariant() ?? "not started"}; the log above says why); v{active.Version.Id} stays active");
            await Task.Delay(50, ct);
        }
    }

    private static string Detail(ReembeddingRun run) => run.CurrentState switch
    {
        "Verifying" => $"{N(run.Done)} of {N(run.Items)} items written in {run.CompletedBatches.Count} batch{(run.CompletedBatches.Count == 1 ? "" : "es")}" +
                       (run.FailedByReason.Count > 0 ? ", failed: " + string.Join(", ", run.FailedByReason.Select(f => $"{f.Key} {N(f.Value)}")) : "") +
                       "; the gate checks the new version",
        "Ready" => "the verify gate passed; cutting over (what `freebind reembed cutover RUN` does)",
        _ => "",
    };

    private static void PrintPlan(ReembeddingRun run)
    {
        foreach (var change in run.Changes) Console.WriteLine("change      " + change);
        var pure = run.ReencodeByExpert.Count == 0 && run.NotRetrievableByReason.Count == 0;
        Console.WriteLine($"plan        {N(run.Items)} items: " + ReembedCommand.PlanLine(run.Refuse, run.ReencodeByExpert, run.NotRetrievableByReason) +
                          (pure ? " — a pure re-fusion from the stored atoms: no media read, no encoder run" : ""));
    }

    private static string N(long count) => count.ToString("N0", CultureInfo.InvariantCulture);

    private async Task PrintGateAsync(Guid id, CancellationToken ct)
    {
        var report = await _services.GetRequiredService<VerificationStore>().GetAsync(id, ct);
        if (report is null) return;
        foreach (var line in report.Format().Split('\n'))
            Console.WriteLine("            " + line.TrimEnd());
    }
}
