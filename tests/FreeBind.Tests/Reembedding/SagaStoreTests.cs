using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Reembedding;
using FreeBind.Persistence.Sagas;
using FreeBind.Tests.Persistence;
using MassTransit;

namespace FreeBind.Tests.Reembedding;

/// <summary>The Postgres saga store on a real server: round trip, optimistic concurrency, duplicates, the exclusive key.</summary>
public sealed class SagaStoreTests(MigratedDatabase fixture) : IClassFixture<MigratedDatabase>
{
    private SagaStore<ReembeddingRun> Store => new(fixture.Db.DataSource, ReembeddingHosting.RunsTable);

    private static ReembeddingRun Run(string space, string state = "Planning", string? key = null) => new()
    {
        CorrelationId = Guid.NewGuid(),
        CurrentState = state,
        ExclusiveKey = key,
        Space = space,
        TargetDigest = "sha256:" + new string('a', 64),
        FailedByReason = { ["content-gone"] = 3 },
        CompletedBatches = { 0, 2, 5 },
    };

    [Fact]
    public async Task Insert_then_load_round_trips_the_state_with_version_one()
    {
        var run = Run("round-trip");
        await Store.InsertAsync(run);
        var loaded = await Store.LoadAsync(run.CorrelationId);
        Assert.NotNull(loaded);
        Assert.Equal(1, loaded.Version);
        Assert.Equal("Planning", loaded.CurrentState);
        Assert.Equal(3, loaded.FailedByReason["content-gone"]);
        Assert.Equal([0L, 2, 5], loaded.CompletedBatches);
        Assert.Null(await Store.LoadAsync(Guid.NewGuid()));
    }

    [Fact]
    public async Task An_update_from_a_stale_read_fails_and_the_first_writer_wins()
    {
        var run = Run("stale");
        await Store.InsertAsync(run);
        var first = (await Store.LoadAsync(run.CorrelationId))!;
        var second = (await Store.LoadAsync(run.CorrelationId))!;
        first.Done = 10;
        await Store.UpdateAsync(first);
        second.Done = 99;
        await Assert.ThrowsAsync<ConcurrencyException>(() => Store.UpdateAsync(second));
        Assert.Equal(1, second.Version); // unchanged: the caller may reload and retry
        var stored = (await Store.LoadAsync(run.CorrelationId))!;
        Assert.Equal(10, stored.Done);
        Assert.Equal(2, stored.Version);
        await Assert.ThrowsAsync<ConcurrencyException>(() => Store.DeleteAsync(second));
    }

    [Fact]
    public async Task Concurrent_read_modify_write_loses_no_update()
    {
        var run = Run("concurrent");
        await Store.InsertAsync(run);
        const int Writers = 8, Increments = 15;
        var conflicts = 0;
        await Task.WhenAll(Enumerable.Range(0, Writers).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < Increments; i++)
                while (true)
                {
                    var current = (await Store.LoadAsync(run.CorrelationId))!;
                    current.Done++;
                    try
                    {
                        await Store.UpdateAsync(current);
                        break;
                    }
                    catch (ConcurrencyException)
                    {
                        Interlocked.Increment(ref conflicts);
                    }
                }
        })));
        var stored = (await Store.LoadAsync(run.CorrelationId))!;
        Assert.Equal(Writers * Increments, stored.Done);
        Assert.Equal(1 + Writers * Increments, stored.Version);
        Assert.True(conflicts > 0, "eight writers on one row never collided: the test did not test concurrency");
    }

    [Fact]
    public async Task A_duplicate_insert_and_a_held_key_are_refused_until_the_key_is_released()
    {
        var run = Run("keyed", key: "keyed");
        await Store.InsertAsync(run);
        var duplicate = Run("keyed");
        duplicate.CorrelationId = run.CorrelationId;
        var e = await Assert.ThrowsAsync<ConcurrencyException>(() => Store.InsertAsync(duplicate));
        Assert.IsNotType<SagaKeyConflictException>(e);

        var rival = Run("keyed", key: "keyed");
        var conflict = await Assert.ThrowsAsync<SagaKeyConflictException>(() => Store.InsertAsync(rival));
        Assert.Equal("keyed", conflict.Key);
        Assert.Equal(run.CorrelationId, (await Store.FindByKeyAsync("keyed"))!.CorrelationId);

        var holder = (await Store.LoadAsync(run.CorrelationId))!;
        holder.ExclusiveKey = null;
        holder.CurrentState = "Cancelled";
        await Store.UpdateAsync(holder);
        await Store.InsertAsync(rival);
        Assert.Equal(rival.CorrelationId, (await Store.FindByKeyAsync("keyed"))!.CorrelationId);
        Assert.Contains(await Store.ListAsync(["Cancelled"]), r => r.CorrelationId == run.CorrelationId);
    }
}
