using System.Diagnostics;
using System.Globalization;
using System.Text;
using FreeBind.Persistence.Embeddings;
using Xunit.Abstractions;

namespace FreeBind.Tests.Persistence;

/// <summary>
/// COPY-merge vs unnest on the same rows, in the same run: both must store identical data, and the
/// figures (rows/s) go to the test output and .work/bench/persistence-writes.md. Small by default so
/// the suite stays fast; FREEBIND_BENCH_ROWS=20000 gives the figures quoted in docs/benchmarks.md.
/// </summary>
public sealed class WriteStrategyComparisonTests(MigratedDatabase fixture, ITestOutputHelper output) : IClassFixture<MigratedDatabase>
{
    private const int Dim = 768; // internvl-ib: fused 768-d, atoms ImageBind 1024-d + InternVL-C 768-d
    private readonly TestDatabase _db = fixture.Db;

    [Fact]
    public async Task Copy_merge_and_unnest_store_the_same_rows_and_are_timed()
    {
        var rows = int.TryParse(Environment.GetEnvironmentVariable("FREEBIND_BENCH_ROWS"), out var r) ? r : 600;
        var cases = new (int Batch, bool Index)[] { (64, false), (500, false), (500, true) };
        var report = new StringBuilder()
            .AppendLine(CultureInfo.InvariantCulture, $"# Persistence write strategies ({rows} items per run, fused {Dim}-d + atoms 1024-d and 768-d, best of 2 runs)")
            .AppendLine()
            .AppendLine("| batch | HNSW index | unnest rows/s | COPY-merge rows/s | COPY-merge / unnest |")
            .AppendLine("| ---: | --- | ---: | ---: | ---: |");
        var items = TestData.Items(rows, Dim, "bench-");

        foreach (var (batch, index) in cases)
        {
            var best = new Dictionary<WriteStrategy, double>();
            for (var round = 0; round < 2; round++)
            {
                foreach (var strategy in new[] { WriteStrategy.Unnest, WriteStrategy.CopyMerge })
                {
                    var v = await _db.Catalog().EnsureVersionAsync("bench", $"sha256:{strategy}-{batch}-{index}-{round}", Dim, "{}", createIndex: index);
                    await _db.Store(strategy).WriteBatchAsync(v, TestData.Items(8, Dim, "warm-")); // plans and pools warm
                    var sw = Stopwatch.StartNew();
                    foreach (var chunk in items.Chunk(batch))
                        await _db.Store(strategy).WriteBatchAsync(v, chunk);
                    var rate = rows / sw.Elapsed.TotalSeconds;
                    best[strategy] = Math.Max(best.GetValueOrDefault(strategy), rate);
                    Assert.Equal(rows + 8, await _db.Store().CountAsync(v));
                    Assert.Equal(items[rows / 2].Embedding.ToArray(), await _db.Store().GetEmbeddingAsync(v, items[rows / 2].Media.Id));
                }
                // The next round rewrites the same media rows: clear them so every run inserts.
                await using var clear = _db.DataSource.CreateCommand("TRUNCATE media, atoms, media_tags CASCADE");
                await clear.ExecuteNonQueryAsync();
            }
            report.AppendLine(CultureInfo.InvariantCulture,
                $"| {batch} | {(index ? "yes" : "no")} | {best[WriteStrategy.Unnest]:F0} | {best[WriteStrategy.CopyMerge]:F0} | {best[WriteStrategy.CopyMerge] / best[WriteStrategy.Unnest]:F2} |");
        }

        output.WriteLine(report.ToString());
        var dir = Path.Combine(TestPaths.RepoRoot, ".work", "bench");
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "persistence-writes.md"), report.ToString());
    }
}
