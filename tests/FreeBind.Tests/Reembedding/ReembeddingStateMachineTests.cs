using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Reembedding;
using FreeBind.Persistence.Sagas;
using FreeBind.Tests.Persistence;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FreeBind.Tests.Reembedding;

/// <summary>
/// The state machine on MassTransit's test harness (in-memory transport) with the real Postgres
/// saga store, its workers played by <see cref="ScriptedWorkers"/>, which answer every command twice.
/// </summary>
public sealed class ReembeddingStateMachineTests(MigratedDatabase fixture) : IClassFixture<MigratedDatabase>
{
    private const string Digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    private const string OtherDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    private async Task<(ServiceProvider Provider, ITestHarness Harness, SagaStore<ReembeddingRun> Runs)> StartAsync(ScriptedArchive archive, int batchSize = 7, int window = 4)
    {
        var services = new ServiceCollection();
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        services.AddSingleton(fixture.Db.DataSource);
        services.AddSingleton(archive);
        services.AddOptions<ReembeddingOptions>().Configure(o =>
        {
            o.BatchSize = batchSize;
            o.WindowBatches = window;
        });
        services.AddSingleton(new SagaStore<ReembeddingRun>(fixture.Db.DataSource, ReembeddingHosting.RunsTable));
        services.AddMassTransitTestHarness(x =>
        {
            x.AddSagaStateMachine<ReembeddingStateMachine, ReembeddingRun, ReembeddingStateDefinition>().PostgresRepository(ReembeddingHosting.RunsTable);
            x.AddConsumer<ScriptedWorkers>();
        });
        var provider = services.BuildServiceProvider(true);
        var harness = provider.GetRequiredService<ITestHarness>();
        harness.TestTimeout = TimeSpan.FromSeconds(60);
        await harness.Start();
        return (provider, harness, provider.GetRequiredService<SagaStore<ReembeddingRun>>());
    }

    private static async Task<ReembeddingRun> WaitForAsync(SagaStore<ReembeddingRun> runs, Guid id, string state, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        ReembeddingRun? run = null;
        while (DateTime.UtcNow < deadline)
        {
            run = await runs.LoadAsync(id);
            if (run?.CurrentState == state) return run;
            await Task.Delay(50);
        }
        throw new Xunit.Sdk.XunitException($"run {id} did not reach {state}; it is {run?.CurrentState ?? "missing"} (done {run?.Done})");
    }

    [Fact]
    public async Task A_run_backfills_every_batch_once_verifies_and_cuts_over_on_command_despite_duplicate_answers()
    {
        var archive = ScriptedArchive.WithItems(100);
        archive.FailOneIn[3] = true;
        var (provider, harness, runs) = await StartAsync(archive);
        await using var _ = provider;
        var id = RunIds.For("dup-answers", Digest);

        await harness.Bus.Publish(new StartReembedding(id, "dup-answers", Digest, AutoCutover: false, "test"));
        await harness.Bus.Publish(new StartReembedding(id, "dup-answers", Digest, AutoCutover: false, "test")); // a repeated start is the same run

        var ready = await WaitForAsync(runs, id, "Ready");
        Assert.Equal(100, ready.Items);
        Assert.Equal(99, ready.Done); // 100 items, one reported failed, every batch counted once although answered twice
        Assert.Equal(1, ready.FailedByReason["content-gone"]);
        Assert.Equal(15, ready.NextSequence); // ceil(100 / 7)
        Assert.Equal(Enumerable.Range(0, 15).Select(i => (long)i), ready.CompletedBatches);
        Assert.Equal(archive.Ids, archive.Written.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("sha256:previous", ready.PreviousDigest);
        Assert.Equal("dup-answers", ready.ExclusiveKey); // still holds its space until the end
        Assert.Empty(archive.Activated);
        var sagaHarness = provider.GetRequiredService<ISagaStateMachineTestHarness<ReembeddingStateMachine, ReembeddingRun>>();
        Assert.True(await sagaHarness.Consumed.Any<ReembeddingVerified>(m => m.Context.Message.RunId == id));

        await harness.Bus.Publish(new CutOverReembedding(id));
        var active = await WaitForAsync(runs, id, "Active");
        Assert.Null(active.ExclusiveKey);
        Assert.Equal([Digest], archive.Activated.Distinct());
        Assert.True(active.Rate(DateTimeOffset.UtcNow) > 0);

        await harness.Bus.Publish(new RollbackReembedding(id));
        await WaitForAsync(runs, id, "RolledBack");
        Assert.Equal(["sha256:previous"], archive.Restored.Distinct());
    }

    [Fact]
    public async Task Auto_cutover_activates_once_the_gate_passes()
    {
        var archive = ScriptedArchive.WithItems(20);
        var (provider, harness, runs) = await StartAsync(archive, batchSize: 5, window: 2);
        await using var _ = provider;
        var id = RunIds.For("auto", Digest);
        await harness.Bus.Publish(new StartReembedding(id, "auto", Digest, AutoCutover: true, "test"));
        var active = await WaitForAsync(runs, id, "Active");
        Assert.Equal(20, active.Done);
        Assert.Equal([Digest], archive.Activated.Distinct());
    }

    [Fact]
    public async Task A_second_run_of_a_space_is_refused_while_the_first_is_in_progress_and_cancel_frees_the_space()
    {
        var archive = ScriptedArchive.WithItems(10);
        archive.HoldPlan["busy"] = true;
        var (provider, harness, runs) = await StartAsync(archive);
        await using var _ = provider;
        var first = RunIds.For("busy", Digest);
        var second = RunIds.For("busy", OtherDigest);

        await harness.Bus.Publish(new StartReembedding(first, "busy", Digest, false, "test"));
        await WaitForAsync(runs, first, "Planning");
        await harness.Bus.Publish(new StartReembedding(second, "busy", OtherDigest, false, "test"));
        var refused = await WaitForAsync(runs, second, "Refused");
        Assert.Contains(first.ToString(), refused.Reason, StringComparison.Ordinal);
        Assert.Null(refused.ExclusiveKey);

        await harness.Bus.Publish(new CancelReembedding(first, "operator changed their mind"));
        var cancelled = await WaitForAsync(runs, first, "Cancelled");
        Assert.Equal("operator changed their mind", cancelled.Reason);
        Assert.Equal([Digest], archive.Dropped.Distinct());
        Assert.Empty(archive.Activated);

        // The refused run, started again now that the space is free, runs.
        archive.HoldPlan.TryRemove("busy", out bool _);
        await harness.Bus.Publish(new StartReembedding(second, "busy", OtherDigest, false, "test"));
        Assert.Equal(10, (await WaitForAsync(runs, second, "Ready")).Done);
    }

    [Fact]
    public async Task Racing_starts_of_one_space_leave_exactly_one_run_in_progress()
    {
        var archive = ScriptedArchive.WithItems(5);
        archive.HoldPlan["race"] = true;
        var (provider, harness, runs) = await StartAsync(archive);
        await using var _ = provider;
        var ids = Enumerable.Range(0, 6).Select(i => (Id: RunIds.For("race", $"sha256:{i:D64}"), Digest: $"sha256:{i:D64}")).ToList();
        await Task.WhenAll(ids.Select(r => harness.Bus.Publish(new StartReembedding(r.Id, "race", r.Digest, false, "test"))));

        var deadline = DateTime.UtcNow.AddSeconds(60);
        List<ReembeddingRun?> states;
        do
        {
            await Task.Delay(100);
            states = [.. await Task.WhenAll(ids.Select(r => runs.LoadAsync(r.Id)))];
        }
        while (states.Any(s => s is null || s.CurrentState is not ("Planning" or "Refused")) && DateTime.UtcNow < deadline);
        Assert.All(states, s => Assert.True(s?.CurrentState is "Planning" or "Refused", $"run in {s?.CurrentState ?? "nothing"}"));
        Assert.Single(states, s => s!.CurrentState == "Planning");
    }

    [Fact]
    public async Task A_nudge_reissues_the_command_a_run_waits_for_and_unknown_runs_are_ignored()
    {
        var archive = ScriptedArchive.WithItems(12);
        archive.HoldPlan["nudged"] = true; // the plan command is "lost"
        var (provider, harness, runs) = await StartAsync(archive);
        await using var _ = provider;
        var id = RunIds.For("nudged", Digest);
        await harness.Bus.Publish(new StartReembedding(id, "nudged", Digest, false, "test"));
        await WaitForAsync(runs, id, "Planning");
        archive.HoldPlan.TryRemove("nudged", out bool _);
        await harness.Bus.Publish(new ReembeddingTick(Guid.NewGuid())); // no such run: discarded, not faulted
        await harness.Bus.Publish(new ReembeddingTick(id));
        Assert.Equal(12, (await WaitForAsync(runs, id, "Ready")).Done);
        Assert.False(await harness.Published.Any<Fault<ReembeddingTick>>());
    }

    [Fact]
    public async Task Pause_stops_dispatching_and_resume_finishes_the_backfill()
    {
        var archive = ScriptedArchive.WithItems(300);
        var (provider, harness, runs) = await StartAsync(archive, batchSize: 3, window: 2);
        await using var _ = provider;
        var id = RunIds.For("pausable", Digest);
        await harness.Bus.Publish(new StartReembedding(id, "pausable", Digest, false, "test"));
        await WaitForAsync(runs, id, "Backfilling");
        await harness.Bus.Publish(new PauseReembedding(id));
        var paused = await WaitForAsync(runs, id, "Paused");
        await Task.Delay(500); // batches in flight finish; no new window is cut
        var settled = (await runs.LoadAsync(id))!;
        Assert.True(settled.NextSequence < 100, $"all {settled.NextSequence} batches were dispatched although paused at {paused.NextSequence}");
        Assert.True(settled.NextSequence <= paused.NextSequence + 2, "a window was cut after the pause");
        await harness.Bus.Publish(new ResumeReembedding(id));
        var ready = await WaitForAsync(runs, id, "Ready");
        Assert.Equal(300, ready.Done);
        Assert.Equal(100, ready.NextSequence);
    }
}
