using System.Diagnostics;
using FreeBind.Persistence.Spaces;

namespace FreeBind.Tests.Persistence.Versions;

/// <summary>The index build after a bulk load: concurrent with live writes, once, repaired after an interruption.</summary>
public sealed class SpaceIndexBuilderTests(MigratedDatabase fixture) : IClassFixture<MigratedDatabase>
{
    private const int Dim = 32;
    private readonly TestDatabase _db = fixture.Db;

    private async Task<SpaceVersion> LoadedAsync(string space, int items)
    {
        var v = await _db.Catalog().RegisterForBackfillAsync(space, "sha256:" + space, Dim, "{}");
        await _db.Store().WriteBatchAsync(v, TestData.Items(items, Dim, space + "-"));
        return v;
    }

    [Fact]
    public async Task Live_writes_into_the_table_go_on_while_its_index_is_built()
    {
        var space = "cic-" + Guid.NewGuid().ToString("N")[..6];
        var v = await LoadedAsync(space, 500);
        Assert.False(await _db.IndexBuilder().IsValidAsync(v));
        // An open snapshot elsewhere holds CREATE INDEX CONCURRENTLY in its last wait, with the build under way.
        await using var holder = await _db.DataSource.OpenConnectionAsync();
        await using var snapshot = await holder.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead);
        await using (var cmd = new Npgsql.NpgsqlCommand("SELECT count(*) FROM media", holder, snapshot))
            await cmd.ExecuteScalarAsync();

        var build = Task.Run(() => _db.IndexBuilder().BuildAsync(v));
        var wait = Stopwatch.StartNew();
        while (await _db.ScalarAsync<long>("SELECT count(*) FROM pg_stat_progress_create_index WHERE relid = to_regclass($1)", $"\"{v.TableName}\"") == 0)
        {
            Assert.False(build.IsCompleted, "the build ended before it could be observed");
            Assert.True(wait.Elapsed < TimeSpan.FromSeconds(30), "the build never started");
            await Task.Delay(10);
        }
        var live = TestData.Item(space + "-live", 9_999, Dim);
        await _db.Store().WriteBatchAsync(v, [live]).WaitAsync(TimeSpan.FromSeconds(20));
        var writtenDuringBuild = !build.IsCompleted;
        await snapshot.CommitAsync();
        var built = await build.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(writtenDuringBuild, "the live write waited for the build");
        Assert.True(built);
        Assert.True(await _db.IndexBuilder().IsValidAsync(v));
        var hits = await _db.Search().SearchVersionAsync(v, live.Embedding, 1);
        Assert.Equal(live.Media.Id, hits.Hits[0].MediaId);
    }

    [Fact]
    public async Task Concurrent_builds_build_once_and_an_interrupted_build_is_rebuilt()
    {
        var space = "once-" + Guid.NewGuid().ToString("N")[..6];
        var v = await LoadedAsync(space, 300);

        var builds = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => _db.IndexBuilder().BuildAsync(v))));
        // What an interrupted CREATE INDEX CONCURRENTLY leaves behind: the index, marked invalid.
        await _db.ExecuteAsync($"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '\"{v.TableName}_hnsw\"'::regclass");
        var invalid = await _db.IndexBuilder().IsValidAsync(v);
        var refused = await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Lifecycle().MarkReadyAsync(v, Guid.NewGuid()));
        var rebuilt = await _db.IndexBuilder().BuildAsync(v);

        Assert.Single(builds, b => b);
        Assert.False(invalid);
        Assert.Equal(SpaceVersionRefusal.IndexMissing, refused.Refusal);
        Assert.True(rebuilt);
        Assert.True(await _db.IndexBuilder().IsValidAsync(v));
    }

    [Fact]
    public async Task Building_the_index_of_a_cancelled_version_is_a_typed_error()
    {
        var space = "gone-" + Guid.NewGuid().ToString("N")[..6];
        var v = await LoadedAsync(space, 10);
        await _db.Lifecycle().CancelAsync(v, "test");

        var error = await Assert.ThrowsAsync<SpaceVersionException>(() => _db.IndexBuilder().BuildAsync(v));

        Assert.Equal(SpaceVersionRefusal.Ended, error.Refusal);
        Assert.Contains("cancelled", error.Message);
    }
}
