using System.Text.Json;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using FreeBind.Tests.Fusion;
using Xunit.Abstractions;

namespace FreeBind.Tests.Encoding;

/// <summary>
/// Encoders + bonds end to end on model-ready tensors (tools/reference/expected_fusion.py): the
/// stand-in encoders run by ONNX Runtime behind the micro-batchers, clips averaged, then fused,
/// against the torch modules. Four items per modality are submitted at once, so they share batches.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class EmbedParityTests(EngineFixture engine, ITestOutputHelper output)
{
    // Measured on the CPU provider: vectors at most 9e-8 apart, atoms at most 6.8e-7 relative
    // (float32 encoder arithmetic in ONNX Runtime vs torch). Gates leave about 10× margin.
    private const float VectorTolerance = 1e-6f;
    private const float AtomRelativeTolerance = 5e-6f;

    public static TheoryData<string> Variants() => ["imagebind", "imagebind++", "internvl-ib", "internvl-ib-ft", "internvl-ib++", "internvl-ib-ft++"];

    [Theory]
    [MemberData(nameof(Variants))]
    public async Task Embed_matches_reference_atoms_and_vectors(string variant)
    {
        var space = EngineFixture.Load(variant);
        using var index = JsonDocument.Parse(File.ReadAllText(TestPaths.Data("embed", "index.json")));
        var items = index.RootElement.GetProperty("items").GetInt32();
        foreach (var plan in space.Plans.Values)
        {
            var modality = plan.Modality.ToName();
            var perExpert = plan.Experts.ToDictionary(e => e, e => Items(index.RootElement, $"{e}.{modality}", space.EncoderOf(e, plan.Modality).Clips, items));
            var tasks = Enumerable.Range(0, items).Select(i =>
                engine.Embedder.EmbedPreprocessedAsync(space, plan.Modality, plan.Experts.ToDictionary(e => e, e => perExpert[e][i]))).ToList();
            var embeddings = await Task.WhenAll(tasks);

            var expected = Npy.Read(TestPaths.Data("embed", variant, modality + ".npy"));
            var dim = space.Dimension;
            var worstVector = 0f;
            var worstAtom = 0f;
            for (var i = 0; i < items; i++)
            {
                worstVector = MathF.Max(worstVector, Jsonl.MaxAbsDiff(expected.Floats!.AsSpan(i * dim, dim).ToArray(), embeddings[i].Vector));
                foreach (var expert in plan.Experts)
                {
                    var atoms = Npy.Read(TestPaths.Data("embed", "atoms", $"{expert}.{modality}.npy"));
                    var width = atoms.Shape[1];
                    var reference = atoms.Floats!.AsSpan(i * width, width).ToArray();
                    // Atoms are raw encoder outputs (ImageBind audio is scaled by 20): compare relative to their size.
                    var scale = MathF.Max(1f, reference.Max(MathF.Abs));
                    worstAtom = MathF.Max(worstAtom, Jsonl.MaxAbsDiff(reference, embeddings[i].Atoms[expert]) / scale);
                }
            }
            output.WriteLine($"{variant} {modality}: vectors max abs {worstVector:G3}, atoms max rel {worstAtom:G3}");
            Assert.True(worstVector <= VectorTolerance, $"{variant} {modality}: vector max abs diff {worstVector}");
            Assert.True(worstAtom <= AtomRelativeTolerance, $"{variant} {modality}: atom max relative diff {worstAtom}");
            Assert.All(embeddings, e => Assert.Equal(space.Version, e.SpaceVersion));
        }
    }

    [Fact]
    public async Task Micro_batcher_merges_concurrent_items()
    {
        var space = EngineFixture.Load("imagebind");
        using var index = JsonDocument.Parse(File.ReadAllText(TestPaths.Data("embed", "index.json")));
        var item = Items(index.RootElement, "imagebind.image", 1, 4)[0];
        var model = engine.Encoders.Model(space, "imagebind", Modality.Image);
        var before = model.Batcher.Counters;
        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(_ =>
            engine.Embedder.EmbedPreprocessedAsync(space, Modality.Image, new Dictionary<string, PreprocessedItem> { ["imagebind"] = item })));
        var after = model.Batcher.Counters;
        Assert.Equal(40, after.Items - before.Items);
        Assert.True(after.Batches - before.Batches < 40, $"40 concurrent items ran in {after.Batches - before.Batches} batches");
        Assert.All(results, r => Assert.Equal(results[0].Vector, r.Vector));
    }

    [Fact]
    public async Task NaN_from_an_encoder_is_rejected_naming_the_model()
    {
        var manifest = SpaceManifest.Parse(File.ReadAllText(EngineFixture.Manifest("imagebind")), "imagebind");
        manifest.Experts["imagebind"].Modalities["image"].Model = "broken/nan-vision.onnx";
        var space = SpaceLoader.Build(manifest, EngineFixture.Models);
        using var index = JsonDocument.Parse(File.ReadAllText(TestPaths.Data("embed", "index.json")));
        var item = Items(index.RootElement, "imagebind.image", 1, 4)[0];
        var error = await Assert.ThrowsAsync<ModelOutputException>(() =>
            engine.Embedder.EmbedPreprocessedAsync(space, Modality.Image, new Dictionary<string, PreprocessedItem> { ["imagebind"] = item }));
        Assert.Contains("broken/nan-vision.onnx", error.Message);
        Assert.Contains("NaN", error.Message);
    }

    [Fact]
    public async Task NaN_in_an_atom_is_rejected_by_fusion()
    {
        var space = EngineFixture.Load("imagebind++");
        var atoms = new Dictionary<string, float[]> { ["imagebind"] = new float[1024], ["clap-general"] = new float[512], ["clap-music"] = new float[512] };
        atoms["clap-music"][7] = float.PositiveInfinity;
        // An atom is fusion's input: the error names it and its element, and blames no model.
        var error = await Assert.ThrowsAsync<ArgumentException>(() => engine.Fusion.FuseAsync(space, Modality.Audio, atoms));
        Assert.Equal("atom 'clap-music' (audio) element 7 is Infinity: atoms must be finite", error.Message);
    }

    /// <summary>The reference's model-ready tensors for one expert and modality, split per item.</summary>
    internal static List<PreprocessedItem> Items(JsonElement index, string key, int clips, int count)
    {
        var inputs = index.GetProperty("experts").GetProperty(key).GetProperty("inputs").EnumerateObject()
            .Select(p => (Name: p.Name, Array: Npy.Read(Path.Combine(TestPaths.Data("embed"), p.Value.GetString()!)))).ToList();
        return Enumerable.Range(0, count).Select(i => new PreprocessedItem(inputs.Select(x =>
        {
            var rowLength = (int)(x.Array.Count / x.Array.Shape[0]);
            var shape = (int[])x.Array.Shape.Clone();
            shape[0] = clips;
            return x.Array.Floats is not null
                ? ModelTensor.Float32(x.Name, shape, x.Array.Floats.AsSpan(i * clips * rowLength, clips * rowLength).ToArray())
                : ModelTensor.Int64(x.Name, shape, x.Array.Longs!.AsSpan(i * clips * rowLength, clips * rowLength).ToArray());
        }).ToList())).ToList();
    }
}
