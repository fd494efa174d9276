using FreeBind.Persistence.Embeddings;
using FreeBind.Tests.Services;
using Npgsql;

namespace FreeBind.Tests.Persistence;

/// <summary>Stops and restarts the test PostgreSQL: runs alone, after the parallel tests.</summary>
[Collection(ServiceOutageCollection.Name)]
public sealed class PostgresOutageTests
{
    [Fact]
    public async Task Writes_fail_as_transient_while_postgres_is_down_and_succeed_after_it_returns()
    {
        await using var db = await TestDatabase.CreateAsync();
        var v = await db.Catalog().EnsureVersionAsync("outage", "sha256:o", 16, "{}");
        var store = db.Store();
        var before = TestData.Items(20, 16, "before-");
        var during = TestData.Items(20, 16, "during-");
        await store.WriteBatchAsync(v, before);

        await ServiceEnvironment.RunScriptAsync("stop-postgres");
        NpgsqlException failure;
        try
        {
            failure = await Assert.ThrowsAnyAsync<NpgsqlException>(() => store.WriteBatchAsync(v, during));
        }
        finally
        {
            await ServiceEnvironment.RunScriptAsync("start-postgres");
        }

        // What a worker retries on: connection refused or a pooled connection cut by the shutdown.
        Assert.True(failure.IsTransient, $"not transient: {failure.GetType().Name} {failure.Message}");
        WriteResult? written = null;
        var retrying = System.Diagnostics.Stopwatch.StartNew();
        while (written is null)
        {
            try
            {
                written = await store.WriteBatchAsync(v, during);
            }
            catch (NpgsqlException ex) when (ex.IsTransient && retrying.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(250); // pooled connections broken by the restart are discarded as they fail
            }
        }
        Assert.Equal(20, written.Value.Embeddings);
        Assert.Equal(40, await store.CountAsync(v));
        Assert.True((await store.WriteBatchAsync(v, [.. before, .. during])).Unchanged);
    }
}
