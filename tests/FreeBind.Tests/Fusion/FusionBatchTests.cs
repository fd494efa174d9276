using System.Globalization;
using FreeBind.Consumers.Cli;
using FreeBind.Encoding;
using FreeBind.Encoding.Fusion;
using FreeBind.Encoding.Spaces;
using Xunit.Abstractions;

namespace FreeBind.Tests.Fusion;

/// <summary>
/// <see cref="FusionEngine.FuseBatch"/>, the re-fusion path: a vector must not depend on the batch
/// it was fused in (a backfill fuses in batches, its verify gate recomputes items alone), and a bad
/// item is named by its index so the caller can set it aside.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class FusionBatchTests(EngineFixture engine, ITestOutputHelper output)
{
    private static List<(string Id, Modality Modality, Dictionary<string, float[]> Atoms)> Items(string variant, Modality modality) =>
        [.. File.ReadLines(TestPaths.Data("fusion", variant, "atoms.jsonl")).Select(AtomLine.Parse).Where(a => a.Modality == modality)];

    private static IReadOnlyDictionary<string, float[]>[] Atoms(IEnumerable<(string Id, Modality Modality, Dictionary<string, float[]> Atoms)> items) =>
        [.. items.Select(i => (IReadOnlyDictionary<string, float[]>)i.Atoms)];

    [Theory]
    [InlineData("imagebind++", "audio")] // one step, a 14-projector parallel mixture
    [InlineData("internvl-ib++", "audio")] // two steps: displacement, then combination
    [InlineData("internvl-ib++", "image")]
    public void A_vector_does_not_depend_on_the_batch_it_is_fused_in(string variant, string modalityName)
    {
        Assert.True(ModalityNames.TryParse(modalityName, out var modality));
        var space = EngineFixture.Load(variant);
        var items = Items(variant, modality);
        var whole = engine.Fusion.FuseBatch(space, modality, Atoms(items));
        // Sizes around the chunk boundaries (rows are split into chunks of at least 32 over the cores).
        foreach (var size in new[] { 1, 2, 31, 32, 33, 63, 64, 65, 97, 128, 257 })
        {
            var worst = 0f;
            for (var start = 0; start < items.Count; start += size)
            {
                var part = engine.Fusion.FuseBatch(space, modality, Atoms(items.Skip(start).Take(size)));
                for (var i = 0; i < part.Length; i++) worst = MathF.Max(worst, Jsonl.MaxAbsDiff(whole[start + i], part[i]));
            }
            output.WriteLine($"{variant}/{modalityName}, batches of {size}: max abs diff {worst.ToString("G3", CultureInfo.InvariantCulture)} against one batch of {items.Count}");
            Assert.Equal(0f, worst);
        }
    }

    [Fact]
    public async Task Concurrent_batches_give_the_same_vectors()
    {
        var space = EngineFixture.Load("imagebind++");
        var atoms = Atoms(Items("imagebind++", Modality.Audio));
        var alone = engine.Fusion.FuseBatch(space, Modality.Audio, atoms);
        var together = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => engine.Fusion.FuseBatch(space, Modality.Audio, atoms))));
        foreach (var run in together)
            for (var i = 0; i < alone.Length; i++) Assert.Equal(alone[i], run[i]);
    }

    [Fact]
    public void A_bad_item_is_named_by_its_index_and_nothing_is_fused()
    {
        var space = EngineFixture.Load("imagebind++");
        var items = Items("imagebind++", Modality.Audio).Take(40).Select(i => new Dictionary<string, float[]>(i.Atoms)).ToList();
        var expert = items[0].Keys.First();

        var missing = items.Select(d => new Dictionary<string, float[]>(d)).ToList();
        missing[7].Remove(expert);
        var e = Assert.Throws<FusionInputException>(() => engine.Fusion.FuseBatch(space, Modality.Audio, missing));
        Assert.Equal(7, e.Item);
        Assert.Contains($"needs the '{expert}' atom", e.Message);

        var nan = items.Select(d => new Dictionary<string, float[]>(d)).ToList();
        nan[33][expert] = [.. nan[33][expert]];
        nan[33][expert][5] = float.NaN;
        e = Assert.Throws<FusionInputException>(() => engine.Fusion.FuseBatch(space, Modality.Audio, nan));
        Assert.Equal(33, e.Item);
        Assert.Contains("NaN", e.Message);

        var shortAtom = items.Select(d => new Dictionary<string, float[]>(d)).ToList();
        shortAtom[39][expert] = shortAtom[39][expert][..10];
        e = Assert.Throws<FusionInputException>(() => engine.Fusion.FuseBatch(space, Modality.Audio, shortAtom));
        Assert.Equal(39, e.Item);
        Assert.Contains("has 10 values", e.Message);
    }

    [Fact]
    public void An_empty_batch_fuses_to_nothing() =>
        Assert.Empty(engine.Fusion.FuseBatch(EngineFixture.Load("imagebind++"), Modality.Audio, []));
}
