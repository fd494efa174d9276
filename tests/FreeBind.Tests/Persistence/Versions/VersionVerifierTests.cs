using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Spaces;
using Xunit.Abstractions;

namespace FreeBind.Tests.Persistence.Versions;

/// <summary>The verify gate's storage checks (coverage, recall, drift) and its stored, printable report. One database per test: coverage reads every media row.</summary>
public sealed class VersionVerifierTests(ITestOutputHelper output)
{
    private const int Dim = 32;
    private static readonly string[] Served = ["image", "audio"];

    private static VersionVerifier Verifier(TestDatabase db) => new(db.DataSource, db.Search());

    private static string Modality(int i) => (i % 3) switch { 0 => "image", 1 => "audio", _ => "text" };

    /// <summary>Clustered unit vectors (as embeddings are), deterministic.</summary>
    private static float[] Clustered(int i, int dimension, int clusters = 20)
    {
        var centre = TestData.Vector(100_000 + i % clusters, dimension);
        var noise = TestData.Vector(i, dimension);
        var v = centre.Select((c, d) => c + 0.35f * noise[d]).ToArray();
        var norm = MathF.Sqrt(v.Sum(x => x * x));
        return v.Select(x => x / norm).ToArray();
    }

    private static List<EmbeddedItem> Items(int count, Func<int, float[]> vector) =>
        Enumerable.Range(0, count).Select(i => TestData.Item($"v{i:D5}", i, Dim) with
        {
            Media = TestData.Media($"v{i:D5}", modality: Modality(i)),
            Embedding = vector(i),
            Atoms = [],
        }).ToList();

    [Fact]
    public async Task Coverage_counts_every_live_item_of_the_served_modalities_as_written_failed_or_missing()
    {
        await using var db = await TestDatabase.CreateAsync();
        var v = await db.Catalog().EnsureVersionAsync("cov", "sha256:c", Dim, "{}", createIndex: false);
        var items = Items(30, i => Clustered(i, Dim));
        await db.Store().WriteBatchAsync(v, items.Take(20).ToList());
        // Items 20–29 exist but were not written into the version: two of them listed as failures.
        var other = await db.Catalog().EnsureVersionAsync("cov", "sha256:other", Dim, "{}");
        await db.Store().WriteBatchAsync(other, items.Skip(20).ToList());
        var run = Guid.NewGuid();
        await new RunFailures(db.DataSource).RecordAsync(run, [new ItemFailure("v00021", "content-unavailable"), new ItemFailure("v00022", "decode")]);

        var coverage = await Verifier(db).CoverageAsync(run, v, Served);
        var otherRun = await Verifier(db).CoverageAsync(Guid.NewGuid(), v, Served);

        // Served (image, audio) among 0–29: 20; among 0–19: 14; failed 21 (image), 22 (audio): 2; missing 24, 25, 27, 28.
        Assert.Equal((20L, 14L, 2L, 4L), (coverage.LiveItems, coverage.Covered, coverage.Failed, coverage.Missing));
        Assert.Equal(["v00024", "v00025", "v00027", "v00028"], coverage.MissingSample);
        Assert.Equal((0L, 6L), (otherRun.Failed, otherRun.Missing));

        await db.Store().WriteBatchAsync(v, items.Skip(20).ToList());
        var complete = await Verifier(db).CoverageAsync(run, v, Served);
        Assert.Equal((20L, 20L, 0L, 0L), (complete.LiveItems, complete.Covered, complete.Failed, complete.Missing));
        Assert.Empty(complete.MissingSample);
    }

    [Fact]
    public async Task Recall_passes_with_the_product_index_and_fails_with_a_crippled_one()
    {
        await using var db = await TestDatabase.CreateAsync();
        var v = await db.Catalog().EnsureVersionAsync("recall", "sha256:r", Dim, "{}", createIndex: false);
        await db.Store().WriteBatchAsync(v, Items(3000, i => TestData.Vector(i, Dim)));
        var options = new VerifyOptions(RecallQueries: 60);

        await db.IndexBuilder().BuildAsync(v);
        var good = await Verifier(db).RecallAsync(v, options);
        await db.ExecuteAsync($"DROP INDEX \"{v.TableName}_hnsw\"");
        await db.ExecuteAsync($"CREATE INDEX \"{v.TableName}_hnsw\" ON \"{v.TableName}\" USING hnsw (embedding vector_cosine_ops) WITH (m = 2, ef_construction = 4)");
        var crippled = await Verifier(db).RecallAsync(v, options);

        output.WriteLine($"recall@10: product index {good.Recall:F3} (worst {good.MinRecall:F2}), crippled index {crippled.Recall:F3} (worst {crippled.MinRecall:F2})");
        Assert.Equal(60, good.Queries);
        Assert.True(good.Passed, $"recall {good.Recall}");
        Assert.InRange(good.Recall!.Value, 0.95, 1.0);
        Assert.False(crippled.Passed, $"recall {crippled.Recall}");
        Assert.True(crippled.MinRecall < good.MinRecall);
    }

    [Fact]
    public async Task Drift_reports_the_exact_mean_cosine_and_the_top_k_overlap_per_modality()
    {
        await using var db = await TestDatabase.CreateAsync();
        var old = await db.Catalog().EnsureVersionAsync("drift", "sha256:old", Dim, "{}");
        var same = await db.Catalog().EnsureVersionAsync("drift", "sha256:same", Dim, "{}");
        var moved = await db.Catalog().EnsureVersionAsync("drift", "sha256:moved", Dim, "{}");
        var wider = await db.Catalog().EnsureVersionAsync("drift", "sha256:wide", Dim * 2, "{}");
        var items = Items(600, i => Clustered(i, Dim));
        var movedVectors = items.Select((item, i) => TestData.Vector(50_000 + i, Dim)).ToList();
        await db.Store().WriteBatchAsync(old, items);
        await db.Store().WriteBatchAsync(same, items);
        await db.Store().WriteBatchAsync(moved, items.Select((item, i) => item with { Embedding = movedVectors[i] }).ToList());
        await db.Store().WriteBatchAsync(wider, items.Select((item, i) => item with { Embedding = Clustered(i, Dim * 2) }).ToList());
        var options = new VerifyOptions(DriftQueriesPerModality: 20);

        var unchanged = await Verifier(db).DriftAsync(old, same, Served, options);
        var changed = await Verifier(db).DriftAsync(old, moved, Served, options);
        var widthChanged = await Verifier(db).DriftAsync(old, wider, Served, options);

        output.WriteLine(string.Join("\n", changed.Concat(widthChanged).Select(d => d.ToString())));
        Assert.Equal(["audio", "image"], unchanged.Select(d => d.Modality));
        Assert.All(unchanged, d =>
        {
            Assert.Equal(200, d.Items);
            Assert.Equal(1.0, d.MeanCosine!.Value, tolerance: 1e-6);
            Assert.Equal(20, d.Queries);
            Assert.Equal(1.0, d.TopKOverlap!.Value, tolerance: 1e-9);
        });
        foreach (var d in changed)
        {
            var indexes = Enumerable.Range(0, items.Count).Where(i => Modality(i) == d.Modality).ToList();
            var expected = indexes.Average(i => (double)items[i].Embedding.Span.ToArray().Zip(movedVectors[i], (a, b) => a * b).Sum());
            Assert.Equal(expected, d.MeanCosine!.Value, tolerance: 1e-5);
            Assert.InRange(d.TopKOverlap!.Value, 0.0, 0.3);
        }
        Assert.All(widthChanged, d =>
        {
            Assert.Null(d.MeanCosine);
            Assert.Equal(20, d.Queries);
            Assert.NotNull(d.TopKOverlap);
        });
    }

    [Fact]
    public async Task The_report_is_stored_with_the_run_read_back_whole_and_printed_and_the_database_agrees_on_the_gate()
    {
        await using var db = await TestDatabase.CreateAsync();
        var old = await db.Catalog().EnsureVersionAsync("report", "sha256:old", Dim, "{}");
        var v = await db.Catalog().EnsureVersionAsync("report", "sha256:new", Dim, "{}");
        var items = Items(120, i => Clustered(i, Dim));
        await db.Store().WriteBatchAsync(old, items);
        await db.Store().WriteBatchAsync(v, items.Take(100).ToList());
        var run = Guid.NewGuid();
        var store = db.Verifications();

        var report = await Verifier(db).VerifyAsync(run, v, old, Served, new VerifyOptions(RecallQueries: 20, DriftQueriesPerModality: 10));
        var savedWithoutSample = await store.SaveAsync(report);
        var sample = await Verifier(db).SampleAsync(v, 15, seed: 3);
        var complete = report with { Sample = new SampleCheck(sample.Count, 0, 2e-7) };
        var savedComplete = await store.SaveAsync(complete);
        var read = await store.GetAsync(run);

        Assert.False(savedWithoutSample);
        Assert.Equal(complete.Passed, savedComplete);
        Assert.False(complete.Passed, "items 100–119 are missing");
        var missing = items.Skip(100).Count(i => Served.Contains(i.Media.Modality));
        Assert.Equal(missing, complete.Coverage.Missing);
        Assert.NotNull(read);
        Assert.Equal(complete.Coverage.MissingSample, read.Coverage.MissingSample);
        Assert.Equal((complete.Coverage.LiveItems, complete.Coverage.Covered, complete.Recall, complete.Sample), (read.Coverage.LiveItems, read.Coverage.Covered, read.Recall, read.Sample));
        Assert.Equal(complete.Drift, read.Drift);
        Assert.NotNull(read.VerifiedAt);
        Assert.Equal(sample.Select(s => s.MediaId), (await Verifier(db).SampleAsync(v, 15, seed: 3)).Select(s => s.MediaId));
        Assert.NotEqual(sample.Select(s => s.MediaId), (await Verifier(db).SampleAsync(v, 15, seed: 4)).Select(s => s.MediaId));
        var text = read.Format();
        Assert.Contains("NOT PASSED", text);
        Assert.Contains($"{missing} missing", text);
        Assert.Contains("recall@10", text);
        Assert.Contains("drift     audio", text);
        Assert.Null(await store.GetAsync(Guid.NewGuid()));

        await db.Store().WriteBatchAsync(v, items.Skip(100).ToList());
        var again = (await Verifier(db).VerifyAsync(run, v, old, Served, new VerifyOptions(RecallQueries: 20, DriftQueriesPerModality: 10)))
            with { Sample = new SampleCheck(15, 0, 0) };
        Assert.True(await store.SaveAsync(again));
        Assert.True((await store.GetAsync(run))!.Passed);
        Assert.Contains("PASSED", again.Format());
    }
}
