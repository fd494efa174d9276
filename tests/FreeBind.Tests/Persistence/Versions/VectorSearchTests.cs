using System.Collections.Concurrent;
using System.Diagnostics;
using FreeBind.Persistence.Spaces;
using Npgsql;
using Pgvector;

namespace FreeBind.Tests.Persistence.Versions;

/// <summary>The Search seam and the SQL functions behind it, including search under cut-over and rollback.</summary>
public sealed class VectorSearchTests(MigratedDatabase fixture) : IClassFixture<MigratedDatabase>
{
    private const int Dim = 24;
    private readonly TestDatabase _db = fixture.Db;

    private static string NewSpace(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private static double CosineDistance(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += a[i] * b[i];
            na += a[i] * a[i];
            nb += b[i] * b[i];
        }
        return 1 - dot / Math.Sqrt(na * nb);
    }

    [Fact]
    public async Task A_version_searched_exactly_returns_the_true_nearest_and_the_index_agrees_on_a_small_table()
    {
        var space = NewSpace("exact");
        var v = await _db.Catalog().EnsureVersionAsync(space, "sha256:x", Dim, "{}");
        var items = TestData.Items(300, Dim, space + "-");
        await _db.Store().WriteBatchAsync(v, items);
        var query = TestData.Vector(77, Dim);
        var truth = items.Select(i => (i.Media.Id, Distance: CosineDistance(query, i.Embedding.ToArray())))
            .OrderBy(p => p.Distance).ThenBy(p => p.Id, StringComparer.Ordinal).Take(10).ToList();

        // A building version: not served, but searchable by id (the verify gate does this).
        var exact = await _db.Search().SearchVersionAsync(v, query, 10, exact: true);
        var approximate = await _db.Search().SearchVersionAsync(v, query, 10);

        Assert.Equal(SpaceVersionState.Building, v.State);
        Assert.Equal(truth.Select(t => t.Id), exact.Hits.Select(h => h.MediaId));
        Assert.All(exact.Hits.Zip(truth), p => Assert.Equal(p.Second.Distance, p.First.Distance, tolerance: 1e-5));
        Assert.Equal(v.Id, exact.VersionId);
        Assert.Equal("sha256:x", exact.Digest);
        Assert.True(approximate.Hits.Select(h => h.MediaId).Intersect(truth.Select(t => t.Id)).Count() >= 9,
            "HNSW finds (nearly) the exact neighbours on 300 rows");
    }

    [Fact]
    public async Task Unservable_searches_are_typed_errors()
    {
        var space = NewSpace("errors");
        var v1 = await _db.Catalog().EnsureVersionAsync(space, "sha256:e1", Dim, "{}");

        var noActive = await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Search().SearchAsync(space, TestData.Vector(1, Dim)));
        await _db.Catalog().ActivateAsync(space, "sha256:e1");
        var width = await Assert.ThrowsAsync<ArgumentException>(() => _db.Search().SearchAsync(space, TestData.Vector(1, Dim + 1)));
        var widthOfVersion = await Assert.ThrowsAsync<ArgumentException>(() => _db.Search().SearchVersionAsync(v1, TestData.Vector(1, Dim - 1)));
        var v2 = await _db.Catalog().EnsureVersionAsync(space, "sha256:e2", Dim, "{}");
        await _db.Lifecycle().CancelAsync(v2, "test");
        var gone = await Assert.ThrowsAsync<SpaceVersionException>(() => _db.Search().SearchVersionAsync(v2, TestData.Vector(1, Dim)));
        var empty = await _db.Search().SearchAsync(space, TestData.Vector(1, Dim));

        Assert.Equal(SpaceVersionRefusal.NoActiveVersion, noActive.Refusal);
        Assert.Contains("no active version", noActive.Message);
        Assert.Contains("dimensions", width.Message);
        Assert.Contains("dimensions", widthOfVersion.Message);
        Assert.Equal(SpaceVersionRefusal.Ended, gone.Refusal);
        Assert.Contains("cancelled", gone.Message);
        Assert.Empty(empty.Hits);
        Assert.Null(empty.VersionId);
    }

    /// <summary>
    /// Issue 9: a query loop running freebind_search through cut-over and through rollback never
    /// errors and never returns rows from two versions in one answer. Each version holds different
    /// vectors for the same items, so every row is checked against the version it claims.
    /// </summary>
    [Fact]
    public async Task A_query_loop_through_cut_overs_and_rollbacks_never_errors_and_never_mixes_versions()
    {
        var space = NewSpace("loop");
        const int Items = 400;
        var ids = Enumerable.Range(0, Items).Select(i => $"{space}-{i:D4}").ToArray();
        var vectors = new Dictionary<int, float[][]>();
        async Task<SpaceVersion> FillAsync(string digest, int seed)
        {
            var v = await _db.Catalog().EnsureVersionAsync(space, digest, Dim, "{}");
            var vs = Enumerable.Range(0, Items).Select(i => TestData.Vector(seed + i, Dim)).ToArray();
            await _db.Store().WriteBatchAsync(v, ids.Select((id, i) => TestData.Item(id, 0, Dim, tenant: i % 4 == 0 ? "rare" : "common") with { Embedding = vs[i] }).ToList());
            vectors[v.Id] = vs;
            return v;
        }
        var v1 = await FillAsync("sha256:l1", 0);
        await _db.Catalog().ActivateAsync(space, "sha256:l1");
        var v2 = await _db.MakeReadyAsync(await FillAsync("sha256:l2", 10_000));
        var v3 = await _db.MakeReadyAsync(await FillAsync("sha256:l3", 20_000));
        var index = ids.Select((id, i) => (id, i)).ToDictionary(p => p.id, p => p.i);

        using var stop = new CancellationTokenSource();
        var answers = new ConcurrentDictionary<int, int>();
        var problems = new ConcurrentQueue<string>();
        async Task QueryLoopAsync(int worker)
        {
            var random = new Random(worker);
            while (!stop.IsCancellationRequested)
            {
                var query = TestData.Vector(random.Next(), Dim);
                var tenant = worker % 2 == 0 ? null : "rare";
                var rows = new List<(string Id, double Distance, int Version)>();
                try
                {
                    await using var cmd = _db.DataSource.CreateCommand("SELECT media_id, distance, space_version FROM freebind_search($1, $2, 10, $3)");
                    cmd.Parameters.Add(new() { Value = space });
                    cmd.Parameters.Add(new() { Value = new Vector(query) });
                    cmd.Parameters.Add(new() { Value = (object?)tenant ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
                    await using var reader = await cmd.ExecuteReaderAsync();
                    while (await reader.ReadAsync())
                        rows.Add((reader.GetString(0), reader.GetDouble(1), reader.GetInt32(2)));
                }
                catch (NpgsqlException e)
                {
                    problems.Enqueue($"query failed: {e.Message}");
                    continue;
                }
                if (rows.Count != 10)
                    problems.Enqueue($"{rows.Count} rows instead of 10");
                if (rows.Select(r => r.Version).Distinct().Count() != 1)
                {
                    problems.Enqueue($"one answer mixes versions {string.Join(",", rows.Select(r => r.Version).Distinct())}");
                    continue;
                }
                var version = rows[0].Version;
                answers.AddOrUpdate(version, 1, (_, n) => n + 1);
                foreach (var row in rows)
                    if (Math.Abs(CosineDistance(query, vectors[version][index[row.Id]]) - row.Distance) > 1e-4)
                        problems.Enqueue($"{row.Id} has distance {row.Distance}, which is not its distance in version {version}");
            }
        }
        var loops = Enumerable.Range(0, 4).Select(w => Task.Run(() => QueryLoopAsync(w))).ToArray();
        async Task SwitchAsync(Func<Task> change)
        {
            var before = answers.Values.Sum();
            var wait = Stopwatch.StartNew();
            while (answers.Values.Sum() < before + 20 && wait.Elapsed < TimeSpan.FromSeconds(30))
                await Task.Delay(10);
            await change();
        }

        await SwitchAsync(() => _db.Lifecycle().CutOverAsync(v2));
        await SwitchAsync(() => _db.Lifecycle().RollbackAsync(space, from: v2));
        await SwitchAsync(() => _db.Lifecycle().CutOverAsync(v3));
        await SwitchAsync(() => _db.Lifecycle().RollbackAsync(space, from: v3));
        await SwitchAsync(() => Task.CompletedTask);
        await stop.CancelAsync();
        await Task.WhenAll(loops);

        Assert.Empty(problems);
        Assert.True(answers.GetValueOrDefault(v1.Id) > 0 && answers.GetValueOrDefault(v2.Id) > 0 && answers.GetValueOrDefault(v3.Id) > 0,
            $"answers per version: {string.Join(", ", answers.Select(a => $"{a.Key}={a.Value}"))}");
        Assert.Equal(v1.Id, (await _db.Catalog().GetActiveAsync(space))!.Id);
    }
}
