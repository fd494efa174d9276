using System.Text.Json;
using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Spaces;
using FreeBind.Encoding;
using FreeBind.Encoding.Experts;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Spaces;
using FreeBind.Tests.Fusion;
using FreeBind.Tests.Persistence.Versions;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace FreeBind.Tests.Ingestion;

/// <summary>
/// Space-version routing while the worker runs: a version registered is written too (dual-write,
/// each encoder once per item), a version activated becomes the one published, a version retired
/// stops receiving writes — all without a restart.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class WriteTargetTests(EngineFixture engine, ITestOutputHelper output)
{
    private static IEnumerable<(string, object)> Texts(string prefix, int count) =>
        Enumerable.Range(0, count).Select(i => ($"{prefix}-{i:D3}", IngestionHarness.TextEvent($"{prefix}-{i:D3}", $"{prefix} caption number {i}")));

    [Fact]
    public async Task A_version_registered_and_then_activated_while_the_worker_runs_is_picked_up_without_a_restart()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind++");
        var worker = await h.StartWorkerAsync();
        await h.ProduceAsync(Texts("before", 10));
        await worker.Metrics.WaitForCompletedAsync(10, TimeSpan.FromMinutes(2));
        var v1 = await h.ActiveVersionAsync();

        // A second version of the space: other factors, same experts and models (the shape of a re-embedding's target).
        var space2 = EngineFixture.Load("imagebind++", FactorSelection.Parse("at-expertise", []));
        var space1 = EngineFixture.Load("imagebind++");
        Assert.NotEqual(space1.Version, space2.Version);
        var v2 = await h.Database.Catalog().EnsureVersionAsync(space2.Name, space2.Version, space2.Dimension, space2.Manifest.ToCanonicalJson());
        var targets = worker.Services.GetRequiredService<WriteTargets>();
        await WaitUntilAsync(() => targets.Current.Targets.Count == 2, "the worker did not take the new version as a write target");

        var encoders = worker.Services.GetRequiredService<ExpertEncoders>();
        var encodedBefore = Encoded(encoders, space1, Modality.Text);
        await h.ProduceAsync(Texts("dual", 12));
        await worker.Metrics.WaitForCompletedAsync(22, TimeSpan.FromMinutes(2));

        var store = h.Database.Store();
        Assert.Equal(22, await store.CountAsync(v1));
        Assert.Equal(12, await store.CountAsync(v2)); // only what came after the version appeared
        // Each encoder ran once per item, whatever the number of versions.
        Assert.Equal(12 * space1.Plans[Modality.Text].Experts.Count, Encoded(encoders, space1, Modality.Text) - encodedBefore);
        foreach (var id in new[] { "dual-000", "dual-007", "dual-011" })
        {
            var atoms = (await store.GetAtomsAsync(id)).ToDictionary(a => a.Expert, a => a.Vector.ToArray());
            Assert.Equal(space1.Plans[Modality.Text].Experts.Order(), atoms.Keys.Order());
            Assert.True(Jsonl.MaxAbsDiff(await engine.Fusion.FuseAsync(space1, Modality.Text, atoms), (await store.GetEmbeddingAsync(v1, id))!) <= 1e-5f, id);
            Assert.True(Jsonl.MaxAbsDiff(await engine.Fusion.FuseAsync(space2, Modality.Text, atoms), (await store.GetEmbeddingAsync(v2, id))!) <= 1e-5f, id);
        }

        // Cut-over: v2 active, v1 retired and kept for a rollback, so both are still written; the output describes v2.
        await h.Database.MakeReadyAsync(v2);
        await h.Database.Lifecycle().CutOverAsync(v2);
        await WaitUntilAsync(() => targets.Current.Active?.Version.Id == v2.Id && targets.Current.Targets.Count == 2, "the worker did not follow the cut-over");
        await h.ProduceAsync(Texts("after", 5));
        await worker.Metrics.WaitForCompletedAsync(27, TimeSpan.FromMinutes(2));
        Assert.Equal(27, await store.CountAsync(v1));
        Assert.Equal(17, await store.CountAsync(v2));

        // The retired version is dropped: it leaves the targets, and new items go to v2 alone.
        await h.Database.Lifecycle().DropAsync((await h.Database.Catalog().GetAsync(v1.Id))!);
        await WaitUntilAsync(() => targets.Current.Targets is [var only] && only.Version.Id == v2.Id, "the worker kept writing a dropped version");
        await h.ProduceAsync(Texts("late", 3));
        await worker.Metrics.WaitForCompletedAsync(30, TimeSpan.FromMinutes(2));
        Assert.Equal(20, await store.CountAsync(v2));

        var published = h.ReadTopic(h.OutputTopic, 30, TimeSpan.FromSeconds(30))
            .ToDictionary(m => m.Message.Key, m => MediaEmbedded.Parse(m.Message.Value));
        Assert.Equal(30, published.Count);
        Assert.Equal(space1.Version, published["dual-003"].SpaceVersion);
        Assert.Equal(space2.Version, published["after-003"].SpaceVersion);
        Assert.Equal(space2.Version, published["late-002"].SpaceVersion);
        output.WriteLine($"v1 {v1.Digest}: 27 rows until dropped, v2 {v2.Digest}: 20 rows");
    }

    private static long Encoded(ExpertEncoders encoders, SpaceDefinition space, Modality modality) =>
        space.Plans[modality].Experts.Sum(e => encoders.Model(space, e, modality).Batcher.Counters.Items);

    private static async Task WaitUntilAsync(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(failure);
            await Task.Delay(50);
        }
    }
}
