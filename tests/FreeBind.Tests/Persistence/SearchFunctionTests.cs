using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Spaces;
using FreeBind.Tests.Persistence.Versions;
using Npgsql;
using Pgvector;

namespace FreeBind.Tests.Persistence;

/// <summary>freebind_search: the SQL function downstream services call (docs/querying.md).</summary>
public sealed class SearchFunctionTests(MigratedDatabase fixture) : IClassFixture<MigratedDatabase>
{
    private const int Dim = 32;
    private readonly TestDatabase _db = fixture.Db;

    private async Task<List<(string Id, double Distance, int Version, string Tenant)>> SearchAsync(string space, float[] query, int k, string? tenant = null)
    {
        await using var cmd = _db.DataSource.CreateCommand(
            "SELECT media_id, distance, space_version, tenant FROM freebind_search($1, $2, $3, $4)");
        cmd.Parameters.Add(new() { Value = space });
        cmd.Parameters.Add(new() { Value = new Vector(query) });
        cmd.Parameters.Add(new() { Value = k });
        cmd.Parameters.Add(new() { Value = (object?)tenant ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        await using var reader = await cmd.ExecuteReaderAsync();
        var rows = new List<(string, double, int, string)>();
        while (await reader.ReadAsync())
            rows.Add((reader.GetString(0), reader.GetDouble(1), reader.GetInt32(2), reader.GetString(3)));
        return rows;
    }

    private static float[] Near(float[] v, int seed)
    {
        var noise = TestData.Vector(seed, v.Length);
        return v.Select((x, i) => x + 0.05f * noise[i]).ToArray();
    }

    [Fact]
    public async Task Returns_the_nearest_items_of_the_active_version_only()
    {
        var space = "search-" + Guid.NewGuid().ToString("N")[..6];
        var catalog = _db.Catalog();
        var v1 = await catalog.EnsureVersionAsync(space, "sha256:one", Dim, """{"v":1}""");
        var v2 = await catalog.EnsureVersionAsync(space, "sha256:two", Dim, """{"v":2}""");
        var items = TestData.Items(200, Dim, space + "-");
        await _db.Store().WriteBatchAsync(v1, items);
        // v2 holds other vectors for the same media: a query must never mix them with v1's.
        await _db.Store().WriteBatchAsync(v2, items.Select((item, i) => item with { Embedding = TestData.Vector(10_000 + i, Dim) }).ToList());
        await catalog.ActivateAsync(space, "sha256:one");
        var target = items[42];

        var hits = await SearchAsync(space, Near(target.Embedding.ToArray(), 7), 5);

        Assert.Equal(5, hits.Count);
        Assert.Equal(target.Media.Id, hits[0].Id);
        Assert.All(hits, h => Assert.Equal(v1.Id, h.Version));
        Assert.True(hits.Zip(hits.Skip(1)).All(p => p.First.Distance <= p.Second.Distance), "results are ordered by distance");

        await _db.Lifecycle().CutOverAsync(await _db.MakeReadyAsync(v2));
        var afterCutOver = await SearchAsync(space, TestData.Vector(10_000 + 17, Dim), 3);

        Assert.Equal(items[17].Media.Id, afterCutOver[0].Id);
        Assert.All(afterCutOver, h => Assert.Equal(v2.Id, h.Version));
        Assert.Equal(SpaceVersionState.Retired, (await catalog.GetAsync(space, "sha256:one"))!.State);
        Assert.Equal(v2.Id, (await catalog.GetActiveAsync(space))!.Id);
    }

    [Fact]
    public async Task K_larger_than_the_default_ef_search_still_returns_k_rows()
    {
        var space = "big-k-" + Guid.NewGuid().ToString("N")[..6];
        var v = await _db.Catalog().EnsureVersionAsync(space, "sha256:k", Dim, "{}");
        await _db.Store().WriteBatchAsync(v, TestData.Items(150, Dim, space + "-"));
        await _db.Catalog().ActivateAsync(space, "sha256:k");

        Assert.Equal(100, (await SearchAsync(space, TestData.Vector(1, Dim), 100)).Count);
    }

    [Fact]
    public async Task A_tenant_filter_returns_only_that_tenants_items()
    {
        var space = "tenant-" + Guid.NewGuid().ToString("N")[..6];
        var v = await _db.Catalog().EnsureVersionAsync(space, "sha256:t", Dim, "{}");
        var items = Enumerable.Range(0, 100).Select(i => TestData.Item($"{space}-{i}", i, Dim, tenant: i % 10 == 0 ? "rare" : "common")).ToList();
        await _db.Store().WriteBatchAsync(v, items);
        await _db.Catalog().ActivateAsync(space, "sha256:t");

        var hits = await SearchAsync(space, items[55].Embedding.ToArray(), 10, "rare");

        Assert.Equal(10, hits.Count);
        Assert.All(hits, h => Assert.Equal("rare", h.Tenant));
    }

    [Fact]
    public async Task A_space_without_an_active_version_or_a_wrong_width_is_an_error()
    {
        var space = "inactive-" + Guid.NewGuid().ToString("N")[..6];
        await _db.Catalog().EnsureVersionAsync(space, "sha256:b", Dim, "{}");

        var none = await Assert.ThrowsAsync<PostgresException>(() => SearchAsync(space, TestData.Vector(1, Dim), 3));
        await _db.Catalog().ActivateAsync(space, "sha256:b");
        var width = await Assert.ThrowsAsync<PostgresException>(() => SearchAsync(space, TestData.Vector(1, Dim + 1), 3));

        Assert.Contains("no active version", none.MessageText);
        Assert.Contains("dimensions", width.MessageText);
    }

    [Fact]
    public async Task The_search_statement_can_use_the_hnsw_index()
    {
        var space = "plan-" + Guid.NewGuid().ToString("N")[..6];
        var v = await _db.Catalog().EnsureVersionAsync(space, "sha256:p", Dim, "{}");
        await _db.Store().WriteBatchAsync(v, TestData.Items(300, Dim, space + "-"));
        await using var connection = await _db.DataSource.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        // 300 rows are cheaper to scan than to search; forbid the scan to prove the statement shape
        // freebind_search runs can use the index (the planner prefers it on real table sizes).
        await using (var noSeqScan = new NpgsqlCommand("SET LOCAL enable_seqscan = off", connection, tx))
            await noSeqScan.ExecuteNonQueryAsync();

        await using var cmd = new NpgsqlCommand(
            $"EXPLAIN SELECT media_id FROM \"{v.TableName}\" ORDER BY embedding <=> $1 LIMIT 5", connection, tx);
        cmd.Parameters.Add(new() { Value = new Vector(TestData.Vector(3, Dim)) });
        var plan = new List<string>();
        await using (var reader = await cmd.ExecuteReaderAsync())
            while (await reader.ReadAsync())
                plan.Add(reader.GetString(0));

        Assert.Contains(plan, line => line.Contains($"{v.TableName}_hnsw", StringComparison.Ordinal));
    }
}
