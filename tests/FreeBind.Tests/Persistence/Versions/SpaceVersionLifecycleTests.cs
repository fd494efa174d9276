using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace FreeBind.Tests.Persistence.Versions;

/// <summary>The lifecycle of space versions (migration 3) on the real Postgres: transitions, refusals, idempotency.</summary>
public sealed class SpaceVersionLifecycleTests(MigratedDatabase fixture) : IClassFixture<MigratedDatabase>
{
    private const int Dim = 16;
    private readonly TestDatabase _db = fixture.Db;

    private static string NewSpace(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private Task<SpaceVersion> RegisterAsync(string space, string digest, bool index = true) =>
        _db.Catalog().EnsureVersionAsync(space, digest, Dim, $$"""{"digest":"{{digest}}"}""", createIndex: index);

    private async Task<Dictionary<string, SpaceVersionState>> StatesAsync(string space) =>
        (await _db.Catalog().ListAsync(space)).ToDictionary(d => d.Version.Digest, d => d.Version.State);

    private async Task<SpaceVersion> ActiveWithItemsAsync(string space, string digest, int items = 20)
    {
        var v = await RegisterAsync(space, digest);
        await _db.Store().WriteBatchAsync(v, TestData.Items(items, Dim, space + "-"));
        return await _db.Catalog().ActivateAsync(space, digest);
    }

    [Fact]
    public async Task A_version_goes_from_building_through_ready_to_active_and_the_old_one_is_retained()
    {
        var space = NewSpace("life");
        var v1 = await ActiveWithItemsAsync(space, "sha256:one");
        var v2 = await RegisterAsync(space, "sha256:two", index: false);
        var run = Guid.NewGuid();

        var noIndex = await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Lifecycle().MarkReadyAsync(v2, run));
        Assert.True(await _db.IndexBuilder().BuildAsync(v2));
        Assert.False(await _db.IndexBuilder().BuildAsync(v2));
        var noGate = await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Lifecycle().MarkReadyAsync(v2, run));
        var failing = VersionTestSteps.PassingReport(run, v2) with { Sample = null };
        Assert.False(await _db.Verifications().SaveAsync(failing));
        var notPassed = await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Lifecycle().MarkReadyAsync(v2, run));
        Assert.True(await _db.Verifications().SaveAsync(VersionTestSteps.PassingReport(run, v2, v1.Id)));
        var ready = await _db.Lifecycle().MarkReadyAsync(v2, run);
        var cut = await _db.Lifecycle().CutOverAsync(v2);

        Assert.Equal(SpaceVersionRefusal.IndexMissing, noIndex.Refusal);
        Assert.Equal(SpaceVersionRefusal.NotVerified, noGate.Refusal);
        Assert.Equal(SpaceVersionRefusal.NotVerified, notPassed.Refusal);
        Assert.Contains("did not pass", notPassed.Message);
        Assert.Equal(SpaceVersionState.Ready, ready.Version.State);
        Assert.True(cut.Changed);
        Assert.Equal(v2.Id, cut.Active.Id);
        Assert.Equal(v1.Id, cut.Retired!.Id);
        var list = await _db.Catalog().ListAsync(space);
        var old = list.Single(d => d.Version.Id == v1.Id);
        var now = list.Single(d => d.Version.Id == v2.Id);
        Assert.Equal(SpaceVersionState.Retired, old.Version.State);
        Assert.NotNull(old.RetiredAt);
        Assert.InRange(old.RetainUntil!.Value - old.RetiredAt!.Value, TimeSpan.FromDays(7) - TimeSpan.FromSeconds(1), TimeSpan.FromDays(7) + TimeSpan.FromSeconds(1));
        Assert.Equal(SpaceVersionState.Active, now.Version.State);
        Assert.NotNull(now.ReadyAt);
        Assert.NotNull(now.ActivatedAt);
        Assert.Equal(v1.Id, now.PreviousId);
        // The retained version is still a write target (so a rollback is exact), next to the active one.
        var targets = await _db.Catalog().GetWriteTargetsAsync(space);
        Assert.Equal(new[] { v1.Id, v2.Id }, targets.Select(t => t.Version.Id));
        Assert.Contains("sha256:two", targets[1].ManifestJson);
    }

    [Fact]
    public async Task Every_operation_repeated_changes_nothing_the_second_time()
    {
        var space = NewSpace("again");
        var v1 = await ActiveWithItemsAsync(space, "sha256:a1");
        var v2 = await _db.MakeReadyAsync(await RegisterAsync(space, "sha256:a2"));
        var v3 = await RegisterAsync(space, "sha256:a3");

        var cuts = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => _db.Lifecycle().CutOverAsync(v2))));
        var afterCut = await StatesAsync(space);
        var rollbacks = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => _db.Lifecycle().RollbackAsync(space, from: v2))));
        var afterRollback = await StatesAsync(space);
        var cancels = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => _db.Lifecycle().CancelAsync(v3, "operator changed their mind"))));
        var activations = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => _db.Catalog().ActivateAsync(space, "sha256:a1"))));

        Assert.Single(cuts, c => c.Changed);
        Assert.All(cuts, c => Assert.Equal(v2.Id, c.Active.Id));
        Assert.Equal(SpaceVersionState.Active, afterCut["sha256:a2"]);
        Assert.Single(rollbacks, r => r.Changed);
        Assert.All(rollbacks, r => Assert.Equal(v1.Id, r.Active.Id));
        Assert.Equal(SpaceVersionState.Active, afterRollback["sha256:a1"]);
        Assert.Equal(SpaceVersionState.Retired, afterRollback["sha256:a2"]);
        Assert.Single(cancels, c => c.Changed);
        Assert.All(cancels, c => Assert.Equal(SpaceVersionState.Cancelled, c.Version.State));
        Assert.All(activations, a => Assert.Equal(v1.Id, a.Id));
        Assert.Equal(SpaceVersionState.Active, (await StatesAsync(space))["sha256:a1"]);
    }

    [Fact]
    public async Task Refusals_are_typed_one_sentence_errors_that_change_nothing()
    {
        var space = NewSpace("refuse");
        var v1 = await ActiveWithItemsAsync(space, "sha256:r1");
        var building = await RegisterAsync(space, "sha256:r2");
        var before = await StatesAsync(space);
        var lifecycle = _db.Lifecycle();

        var refusals = new List<(SpaceVersionRefusal Expected, SpaceVersionException Error)>
        {
            (SpaceVersionRefusal.WrongState, await Assert.ThrowsAsync<SpaceVersionException>(() => lifecycle.CutOverAsync(building))),
            (SpaceVersionRefusal.NothingToRollBack, await Assert.ThrowsAsync<SpaceVersionException>(() => lifecycle.RollbackAsync(space))),
            (SpaceVersionRefusal.WrongState, await Assert.ThrowsAsync<SpaceVersionException>(() => lifecycle.CancelAsync(v1, "oops"))),
            (SpaceVersionRefusal.WrongState, await Assert.ThrowsAsync<SpaceVersionException>(() => lifecycle.DropAsync(v1))),
            (SpaceVersionRefusal.AnotherActive, await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Catalog().ActivateAsync(space, "sha256:r2"))),
            (SpaceVersionRefusal.UnknownVersion, await Assert.ThrowsAsync<SpaceVersionException>(() => lifecycle.CutOverAsync(building with { Id = int.MaxValue }))),
            (SpaceVersionRefusal.UnknownSpace, await Assert.ThrowsAsync<SpaceVersionException>(() => lifecycle.RollbackAsync("no-such-space"))),
            (SpaceVersionRefusal.UnknownSpace, await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Catalog().ListAsync("no-such-space"))),
            (SpaceVersionRefusal.UnknownVersion, await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Catalog().ActivateAsync(space, "sha256:nope"))),
            (SpaceVersionRefusal.WrongState, await Assert.ThrowsAsync<SpaceVersionException>(() => lifecycle.RollbackAsync(space, from: building))),
        };

        Assert.All(refusals, r =>
        {
            Assert.Equal(r.Expected, r.Error.Refusal);
            Assert.DoesNotContain('\n', r.Error.Message);
            Assert.DoesNotContain("   at ", r.Error.Message);
        });
        Assert.Contains("still building", refusals[0].Error.Message);
        Assert.Contains("roll it back first", refusals[2].Error.Message);
        Assert.Equal(before, await StatesAsync(space));
        Assert.Equal(v1.Id, (await _db.Catalog().GetActiveAsync(space))!.Id);
    }

    [Fact]
    public async Task Cancel_drops_the_building_table_and_its_tags_and_leaves_the_active_version_untouched()
    {
        var space = NewSpace("cancel");
        var v1 = await ActiveWithItemsAsync(space, "sha256:c1", items: 30);
        var v2 = await RegisterAsync(space, "sha256:c2", index: false);
        var vocabulary = await _db.ScalarAsync<long>("INSERT INTO tag_vocabularies (tenant, name) VALUES ('acme', $1) RETURNING id", space);
        await using (var cmd = _db.DataSource.CreateCommand("INSERT INTO tag_labels VALUES ($1, 'cat')"))
        {
            cmd.Parameters.Add(new() { Value = vocabulary });
            await cmd.ExecuteNonQueryAsync();
        }
        var tagged = TestData.Items(10, Dim, space + "-").Select(i => i with { Tags = [new TagScore(vocabulary, "cat", 0.5f)] }).ToList();
        await _db.Store().WriteBatchAsync(v2, tagged);
        await _db.Store().WriteBatchAsync(v1, tagged);
        var activeRows = await _db.Store().CountAsync(v1);

        var cancelled = await _db.Lifecycle().CancelAsync(v2, "operator cancelled the run");

        Assert.True(cancelled.Changed);
        Assert.False(await _db.TableExistsAsync(v2.TableName));
        Assert.Equal(0L, await _db.ScalarAsync<long>("SELECT count(*) FROM media_tags WHERE space_version_id = $1", v2.Id));
        Assert.Equal(10L, await _db.ScalarAsync<long>("SELECT count(*) FROM media_tags WHERE space_version_id = $1", v1.Id));
        Assert.Equal(activeRows, await _db.Store().CountAsync(v1));
        Assert.Equal(v1.Id, (await _db.Catalog().GetActiveAsync(space))!.Id);
        Assert.Equal(new[] { v1.Id }, (await _db.Catalog().GetWriteTargetsAsync(space)).Select(t => t.Version.Id));
        var details = (await _db.Catalog().ListAsync(space)).Single(d => d.Version.Id == v2.Id);
        Assert.Equal(SpaceVersionState.Cancelled, details.Version.State);
        Assert.Equal("operator cancelled the run", details.EndReason);
        Assert.NotNull(details.EndedAt);
        var gone = await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Lifecycle().CutOverAsync(v2));
        Assert.Equal(SpaceVersionRefusal.Ended, gone.Refusal);

        // Publishing the same manifest again rebuilds it from an empty table.
        var again = await RegisterAsync(space, "sha256:c2", index: false);
        Assert.Equal(v2.Id, again.Id);
        Assert.Equal(SpaceVersionState.Building, again.State);
        Assert.Equal(0L, await _db.Store().CountAsync(again));
        Assert.Null((await _db.Catalog().ListAsync(space)).Single(d => d.Version.Id == v2.Id).EndedAt);
    }

    [Fact]
    public async Task Rollbacks_walk_back_through_the_cut_overs_while_versions_are_retained()
    {
        var space = NewSpace("walk");
        var v1 = await ActiveWithItemsAsync(space, "sha256:w1");
        var v2 = await _db.MakeReadyAsync(await RegisterAsync(space, "sha256:w2"));
        await _db.Lifecycle().CutOverAsync(v2);
        var v3 = await _db.MakeReadyAsync(await RegisterAsync(space, "sha256:w3"));
        await _db.Lifecycle().CutOverAsync(v3);

        var first = await _db.Lifecycle().RollbackAsync(space);
        var second = await _db.Lifecycle().RollbackAsync(space);
        var third = await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Lifecycle().RollbackAsync(space));

        Assert.Equal((v2.Id, v3.Id), (first.Active.Id, first.Retired!.Id));
        Assert.Equal((v1.Id, v2.Id), (second.Active.Id, second.Retired!.Id));
        Assert.Equal(SpaceVersionRefusal.NothingToRollBack, third.Refusal);
        Assert.Equal(new Dictionary<string, SpaceVersionState>
        {
            ["sha256:w1"] = SpaceVersionState.Active, ["sha256:w2"] = SpaceVersionState.Retired, ["sha256:w3"] = SpaceVersionState.Retired,
        }, await StatesAsync(space));
    }

    [Fact]
    public async Task Expired_retired_versions_are_dropped_and_can_no_longer_be_rolled_back_to()
    {
        var space = NewSpace("expire");
        var v1 = await ActiveWithItemsAsync(space, "sha256:e1");
        var v2 = await _db.MakeReadyAsync(await RegisterAsync(space, "sha256:e2"));
        await _db.Lifecycle(retention: TimeSpan.Zero).CutOverAsync(v2);

        var targets = await _db.Catalog().GetWriteTargetsAsync(space);
        var rollback = await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Lifecycle().RollbackAsync(space));
        var dropped = await _db.Lifecycle().DropExpiredAsync();
        var droppedAgain = await _db.Lifecycle().DropExpiredAsync();

        Assert.Equal(new[] { v2.Id }, targets.Select(t => t.Version.Id));
        Assert.Equal(SpaceVersionRefusal.NothingToRollBack, rollback.Refusal);
        Assert.Contains("past its retention", rollback.Message);
        Assert.Contains(dropped, d => d.Id == v1.Id && d.State == SpaceVersionState.Dropped);
        Assert.DoesNotContain(droppedAgain, d => d.Id == v1.Id);
        Assert.False(await _db.TableExistsAsync(v1.TableName));
        Assert.True(await _db.TableExistsAsync(v2.TableName));
        Assert.Equal(v2.Id, (await _db.Catalog().GetActiveAsync(space))!.Id);
        Assert.Equal(SpaceVersionState.Dropped, (await StatesAsync(space))["sha256:e1"]);
    }

    [Fact]
    public async Task An_operator_drop_removes_a_retained_version_before_its_retention_ends()
    {
        var space = NewSpace("drop");
        var v1 = await ActiveWithItemsAsync(space, "sha256:d1");
        var v2 = await _db.MakeReadyAsync(await RegisterAsync(space, "sha256:d2"));
        await _db.Lifecycle().CutOverAsync(v2);

        var dropped = await _db.Lifecycle().DropAsync(v1);
        var again = await _db.Lifecycle().DropAsync(v1);

        Assert.True(dropped.Changed);
        Assert.False(again.Changed);
        Assert.False(await _db.TableExistsAsync(v1.TableName));
        Assert.Equal(SpaceVersionRefusal.NothingToRollBack, (await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Lifecycle().RollbackAsync(space))).Refusal);
    }

    [Fact]
    public async Task The_retention_sweep_drops_expired_versions_on_its_schedule_and_keeps_retained_ones()
    {
        var expiring = NewSpace("sweep-a");
        var retained = NewSpace("sweep-b");
        var a1 = await ActiveWithItemsAsync(expiring, "sha256:a1");
        var b1 = await ActiveWithItemsAsync(retained, "sha256:b1");
        await _db.Lifecycle(retention: TimeSpan.Zero).CutOverAsync(await _db.MakeReadyAsync(await RegisterAsync(expiring, "sha256:a2")));
        await _db.Lifecycle().CutOverAsync(await _db.MakeReadyAsync(await RegisterAsync(retained, "sha256:b2")));
        var options = Options.Create(new SpaceVersionOptions { SweepInterval = TimeSpan.FromMilliseconds(100) });
        using var sweep = new RetentionSweep(new SpaceVersionLifecycle(_db.DataSource, options, NullLogger<SpaceVersionLifecycle>.Instance),
            options, NullLogger<RetentionSweep>.Instance);

        await sweep.StartAsync(CancellationToken.None);
        var wait = System.Diagnostics.Stopwatch.StartNew();
        while ((await StatesAsync(expiring))["sha256:a1"] != SpaceVersionState.Dropped)
        {
            Assert.True(wait.Elapsed < TimeSpan.FromSeconds(30), "the sweep did not drop the expired version");
            await Task.Delay(50);
        }
        await sweep.StopAsync(CancellationToken.None);

        Assert.False(await _db.TableExistsAsync(a1.TableName));
        Assert.Equal(SpaceVersionState.Retired, (await StatesAsync(retained))["sha256:b1"]);
        Assert.True(await _db.TableExistsAsync(b1.TableName));
    }
}
