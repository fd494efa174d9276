using System.CommandLine;
using System.Globalization;
using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Reembedding;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Sagas;
using FreeBind.Persistence.Spaces;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind reembed host|start|status|pause|resume|cancel|cutover|rollback</c>: run and steer the
/// re-embedding saga. Operator input is checked against the stored run first: a command that does
/// not fit the run's state changes nothing and ends with one line and exit code 1.
/// </summary>
internal static class ReembedCommand
{
    private static readonly Argument<string> Run = new("RUN") { Description = "Run id, as `reembed start` prints it" };

    public static Command Build()
    {
        var command = new Command("reembed", "Re-embed a space's archive into a new version (MassTransit saga on RabbitMQ)");
        command.Subcommands.Add(Host());
        command.Subcommands.Add(Start());
        command.Subcommands.Add(Status());
        command.Subcommands.Add(Steer("pause", "Stop dispatching new batches (batches in flight finish)", ["Backfilling"], "only a backfilling run can be paused",
            id => new PauseReembedding(id), "Paused"));
        command.Subcommands.Add(Steer("resume", "Continue a paused run", ["Paused"], "only a paused run can be resumed", id => new ResumeReembedding(id), "Backfilling"));
        command.Subcommands.Add(Steer("cancel", "Abandon a run: its building version is dropped, the active one untouched",
            ["Planning", "Backfilling", "Paused", "Verifying", "Ready"], "it has ended already", id => new CancelReembedding(id, "cancelled by an operator"), "Cancelled"));
        command.Subcommands.Add(Steer("cutover", "Activate the run's version (only after its verify gate passed)", ["Ready"],
            "a cut-over needs the verify gate to have passed (state ready)", id => new CutOverReembedding(id), "Active"));
        command.Subcommands.Add(Rollback());
        return command;
    }

    private static IHost Client(ParseResult? result = null, Action<HostApplicationBuilder>? configure = null) => CliHost.Build(builder =>
    {
        if (result is not null) builder.Configuration.AddInMemoryCollection(RunCommand.Overrides(result));
        builder.AddItemPipeline();
        builder.AddReembedding(ReembeddingRoles.Client);
        configure?.Invoke(builder);
    });

    private static Command Host()
    {
        var saga = new Option<bool>("--saga") { Description = "Run the state machine and its watchdog only" };
        var worker = new Option<bool>("--worker") { Description = "Run the workers only (plan, backfill batches, verify, cut-over); start as many as wanted" };
        var command = new Command("host", "Run the re-embedding saga host and/or workers until stopped (default: both)") { FreeBindCli.Models, saga, worker };
        command.SetAction((result, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            var roles = (result.GetValue(saga), result.GetValue(worker)) switch
            {
                (true, false) => ReembeddingRoles.SagaHost,
                (false, true) => ReembeddingRoles.Worker,
                _ => ReembeddingRoles.SagaHost | ReembeddingRoles.Worker,
            };
            using var host = CliHost.Build(builder =>
            {
                builder.Configuration.AddInMemoryCollection(RunCommand.Overrides(result));
                builder.AddItemPipeline();
                builder.AddReembedding(roles);
            });
            await host.RunAsync(ct);
            return 0;
        })));
        return command;
    }

    private static Command Start()
    {
        var auto = new Option<bool>("--auto-cutover") { Description = "Activate the new version as soon as its verify gate passes" };
        var command = new Command("start", "Register the space's new version (from --space, --models, --preset/--factor) and start the run that builds it; prints the run id")
        {
            FreeBindCli.Space, FreeBindCli.Models, FreeBindCli.Preset, FreeBindCli.Factor, auto,
        };
        command.SetAction((result, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            using var host = Client(result);
            await host.StartAsync(ct);
            var (space, version) = await RegisterAsync(host, result, ct);
            var id = RunIds.For(space.Name, space.Version);
            var asked = DateTimeOffset.UtcNow.AddSeconds(-5); // clock skew between this machine and the saga host
            await host.Services.GetRequiredService<IBus>().Publish(new StartReembedding(id, space.Name, space.Version, result.GetValue(auto), "cli"), ct);
            var run = await WaitAsync(host, id, r => r is not null && r.StartedAt >= asked, ct);
            if (run is null || run.StartedAt < asked) return Fail("no saga host answered within 2 minutes; start one with: freebind reembed host");
            if (run.CurrentState == "Refused") return Fail($"run refused: {run.Reason}");
            Console.WriteLine(id);
            await Console.Error.WriteLineAsync($"run {id} re-embeds {space.Name} into v{version.Id} {space.ShortVersion}; follow it with: freebind reembed status {id} --watch");
            await host.StopAsync(ct);
            return 0;
        })));
        return command;
    }

    /// <summary>Loads the space from the options, refuses what cannot start, and registers the version (state building).</summary>
    internal static Task<(SpaceDefinition Space, SpaceVersion Version)> RegisterAsync(IHost host, ParseResult result, CancellationToken ct) =>
        RegisterAsync(host, host.Services.GetRequiredService<ManifestCatalog>().Load(result.GetValue(FreeBindCli.Space), result.GetValue(FreeBindCli.Models), FreeBindCli.Factors(result)), ct);

    /// <summary>Refuses what cannot start, and registers <paramref name="space"/> (state building); <c>freebind demo</c> uses it too.</summary>
    internal static async Task<(SpaceDefinition Space, SpaceVersion Version)> RegisterAsync(IHost host, SpaceDefinition space, CancellationToken ct)
    {
        var catalog = host.Services.GetRequiredService<SpaceCatalog>();
        if (await catalog.GetActiveAsync(space.Name, ct) is { } active && active.Digest == space.Version)
            throw new OperatorException($"version {space.ShortVersion} is already the active version of '{space.Name}'; nothing to re-embed (change --preset, --factor or the model files)");
        if (await host.Services.GetRequiredService<SagaStore<ReembeddingRun>>().FindByKeyAsync(space.Name, ct) is { } holder && holder.TargetDigest != space.Version)
            throw new OperatorException($"run {holder.CorrelationId} of '{space.Name}' is {holder.CurrentState.ToLowerInvariant()}; cancel it (freebind reembed cancel {holder.CorrelationId}) or wait for it to end");
        var version = await catalog.EnsureVersionAsync(space.Name, space.Version, space.Dimension, space.Manifest.ToCanonicalJson(), createIndex: false, cancellationToken: ct);
        // The file digests go with it, so a backfill worker can re-fuse without the encoder files.
        await host.Services.GetRequiredService<FreeBind.Persistence.Reembedding.VersionDocuments>().SaveAsync(version, space.ToJson().ToJsonString(), ct);
        return (space, version);
    }

    private static Command Status()
    {
        var run = new Argument<string?>("RUN") { Description = "Run id; none lists the runs", Arity = ArgumentArity.ZeroOrOne };
        var watch = new Option<bool>("--watch", "-w") { Description = "Refresh every 2 s until the run ends or waits for an operator" };
        var command = new Command("status", "Phase, progress, items/s, ETA and failures of a run (or the list of runs)") { run, watch };
        command.SetAction((result, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            using var host = CliHost.Build(builder =>
            {
                builder.AddItemPipeline();
                builder.Services.AddSingleton(sp => new SagaStore<ReembeddingRun>(sp.GetRequiredService<Npgsql.NpgsqlDataSource>(), ReembeddingHosting.RunsTable));
            });
            var runs = host.Services.GetRequiredService<SagaStore<ReembeddingRun>>();
            if (result.GetValue(run) is not { } text)
            {
                var all = await runs.ListAsync([], ct);
                if (all.Count == 0) Console.WriteLine("no re-embedding run yet");
                foreach (var r in all)
                    Console.WriteLine($"{r.CorrelationId}  {r.Space,-16} {r.CurrentState.ToLowerInvariant(),-12} {r.Done,10:N0}/{r.Items:N0}  {r.StartedAt:yyyy-MM-dd HH:mm}");
                return 0;
            }
            var id = ParseRun(text);
            while (true)
            {
                var current = await runs.LoadAsync(id, ct) ?? throw UnknownRun(id);
                Print(current);
                if (!result.GetValue(watch) || ReembeddingStateMachine.FinalStates.Contains(current.CurrentState) || current.CurrentState is "Ready" or "Paused")
                    return 0;
                await Task.Delay(TimeSpan.FromSeconds(2), ct);
                Console.WriteLine();
            }
        })));
        return command;
    }

    private static Command Steer(string name, string description, string[] allowed, string refusal, Func<Guid, object> message, string expected)
    {
        var command = new Command(name, description) { Run };
        command.SetAction((result, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            var id = ParseRun(result.GetValue(Run)!);
            using var host = Client();
            var runs = host.Services.GetRequiredService<SagaStore<ReembeddingRun>>();
            var run = await runs.LoadAsync(id, ct) ?? throw UnknownRun(id);
            if (!allowed.Contains(run.CurrentState))
                return Fail($"run {id} is {run.CurrentState.ToLowerInvariant()}: {refusal}");
            await host.StartAsync(ct);
            await host.Services.GetRequiredService<IBus>().Publish(message(id), ct);
            var after = await WaitAsync(host, id, r => r?.CurrentState != run.CurrentState, ct);
            await host.StopAsync(ct);
            Console.WriteLine($"run {id} is {after?.CurrentState.ToLowerInvariant() ?? run.CurrentState.ToLowerInvariant()}" + (after?.Reason is { } reason && after.CurrentState != expected ? $": {reason}" : ""));
            return after?.CurrentState == expected || (expected == "Cancelled" && after?.CurrentState == "Cancelling") ? 0 : 1;
        })));
        return command;
    }

    private static Command Rollback()
    {
        var space = new Argument<string>("SPACE") { Description = "Space name" };
        var command = new Command("rollback", "Re-activate the version the last cut-over replaced, while it is retained") { space };
        command.SetAction((result, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            var name = result.GetValue(space)!;
            using var host = Client();
            var runs = host.Services.GetRequiredService<SagaStore<ReembeddingRun>>();
            var catalog = host.Services.GetRequiredService<SpaceCatalog>();
            var active = await catalog.GetActiveAsync(name, ct);
            if (active is null)
                return Fail($"space '{name}' has no active version (spaces with one: see freebind reembed status)");
            var run = (await runs.ListAsync(["Active"], ct)).FirstOrDefault(r => r.Space == name && r.TargetDigest == active.Digest);
            if (run?.PreviousDigest is null)
                return Fail($"the active version of '{name}' was not cut over by a re-embedding run with a previous version; nothing to roll back to");
            var previous = (await catalog.ListAsync(name, ct)).FirstOrDefault(v => v.Version.Digest == run.PreviousDigest);
            if (previous is null || previous.Version.State != SpaceVersionState.Retired)
                return Fail($"the previous version of '{name}' ({run.PreviousDigest}) is no longer retained; a rollback is not possible");
            await host.StartAsync(ct);
            await host.Services.GetRequiredService<IBus>().Publish(new RollbackReembedding(run.CorrelationId), ct);
            var after = await WaitAsync(host, run.CorrelationId, r => r?.CurrentState is "RolledBack" || (r?.CurrentState == "Active" && r.Reason is not null), ct);
            await host.StopAsync(ct);
            if (after?.CurrentState != "RolledBack") return Fail($"rollback of '{name}' refused: {after?.Reason ?? "no answer from the saga host within 2 minutes (is `freebind reembed host` running?)"}");
            Console.WriteLine($"space '{name}' is back on {run.PreviousDigest}");
            return 0;
        })));
        return command;
    }

    private static async Task<ReembeddingRun?> WaitAsync(IHost host, Guid id, Func<ReembeddingRun?, bool> done, CancellationToken ct)
    {
        var runs = host.Services.GetRequiredService<SagaStore<ReembeddingRun>>();
        var deadline = DateTime.UtcNow.AddMinutes(2);
        ReembeddingRun? run = null;
        while (DateTime.UtcNow < deadline)
        {
            run = await runs.LoadAsync(id, ct);
            if (done(run)) return run;
            await Task.Delay(200, ct);
        }
        return run;
    }

    private static void Print(ReembeddingRun run)
    {
        var inv = CultureInfo.InvariantCulture;
        var now = DateTimeOffset.UtcNow;
        var rate = run.Rate(now);
        var fraction = run.Items > 0 ? Math.Min(1, (run.Done + run.FailedByReason.Values.Sum()) / (double)run.Items) : 0;
        var bar = new string('#', (int)(fraction * 30)) + new string('-', 30 - (int)(fraction * 30));
        var left = run.Items - run.Done - run.FailedByReason.Values.Sum();
        Console.WriteLine($"run       {run.CorrelationId}");
        Console.WriteLine($"space     {run.Space}: {run.TargetDigest}" + (run.PreviousDigest is null ? "" : $" (replaces {run.PreviousDigest})"));
        Console.WriteLine($"phase     {run.CurrentState.ToLowerInvariant()} (started {run.StartedAt.ToString("yyyy-MM-dd HH:mm:ss", inv)} UTC by {run.RequestedBy})");
        Console.WriteLine($"progress  [{bar}] {(fraction * 100).ToString("0", inv)}%  {run.Done.ToString("N0", inv)} of {run.Items.ToString("N0", inv)} items, " +
                          $"{rate.ToString("0.0", inv)} items/s" + (rate > 0 && left > 0 ? $", ETA {TimeSpan.FromSeconds(left / rate):hh\\:mm\\:ss}" : ""));
        if (run.FailedByReason.Count > 0)
            Console.WriteLine("failures  " + string.Join(", ", run.FailedByReason.Select(f => $"{f.Key} {f.Value.ToString("N0", inv)}")));
        Console.WriteLine("plan      " + PlanLine(run.Refuse, run.ReencodeByExpert, run.NotRetrievableByReason));
        foreach (var change in run.Changes) Console.WriteLine("change    " + change);
        foreach (var finding in run.Findings) Console.WriteLine("verify    " + finding);
        foreach (var drift in run.Drift) Console.WriteLine("drift     " + drift);
        if (run.Reason is not null) Console.WriteLine("reason    " + run.Reason);
    }

    internal static string PlanLine(long refuse, IReadOnlyDictionary<string, long> reencode, IReadOnlyDictionary<string, long> unretrievable) =>
        $"re-fuse {refuse:N0}" + string.Concat(reencode.Select(r => $", re-encode {r.Key} {r.Value:N0}")) +
        string.Concat(unretrievable.Select(u => $", not retrievable ({u.Key}) {u.Value:N0}"));

    private static Guid ParseRun(string text) =>
        Guid.TryParse(text, out var id) ? id : throw new OperatorException($"'{text}' is not a run id (a UUID, as `freebind reembed start` prints it)");

    private static OperatorException UnknownRun(Guid id) => new($"no re-embedding run {id}; list the runs with: freebind reembed status");

    private static int Fail(string message)
    {
        Console.Error.WriteLine("error: " + message);
        return 1;
    }
}

/// <summary>Operator input that does not fit (unknown run, wrong state): one line, nothing changed.</summary>
internal sealed class OperatorException(string message) : ArgumentException(message);
