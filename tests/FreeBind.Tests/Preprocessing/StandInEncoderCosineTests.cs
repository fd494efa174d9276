using System.Text.Json;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using Xunit.Abstractions;

namespace FreeBind.Tests.Preprocessing;

/// <summary>
/// Issue 3, parity of whole items: the sample media (3 JPEGs, 3 WAVs, 3 captions) preprocessed in
/// C# and encoded by the stand-in ONNX encoders through the engine (<see cref="Embedder.EmbedAsync"/>:
/// profile from the manifest → preprocessor → micro-batched session → atom), against the torch twins
/// of the same encoders fed the reference preprocessing (tools/reference/expected_standin.py).
/// Every expert of every modality is covered: <c>internvl-ib-ft++</c> uses all encoders but
/// ImageBind's own audio trunk, which <c>imagebind</c> adds.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class StandInEncoderCosineTests(EngineFixture engine, ITestOutputHelper output)
{
    /// <summary>
    /// 1 − cosine allowed per profile. Measured: at most 6e-14 (images), 5e-13 (imagebind-audio),
    /// 4e-14 (text), 1e-14 (clap waveform) — float32 arithmetic only, the inputs being equal to
    /// ≤ 2e-4 — and 4.8e-9 for clap-fusion, whose mel moves near-silent bins by up to 0.9 dB where
    /// int16 quantisation rounds one sample the other way (see AudioParityTests). Gates: 1e-10, and
    /// 1e-7 for clap-fusion (≥ 20× margin). The former gate, cosine ≥ 0.9999, let through a
    /// pre-emphasis bug a hundred times over the fbank tolerance.
    /// </summary>
    private static double MaxOneMinusCosine(string profile) => profile == "clap-fusion" ? 1e-7 : 1e-10;

    public static TheoryData<string, string> Cases() => new()
    {
        { "internvl-ib-ft++", "image" },
        { "internvl-ib-ft++", "audio" },
        { "internvl-ib-ft++", "text" },
        { "imagebind", "audio" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Embeddings_from_csharp_preprocessing_match_the_reference(string variant, string modalityName)
    {
        var modality = ModalityNames.Parse(modalityName);
        var space = EngineFixture.Load(variant);
        using var index = JsonDocument.Parse(File.ReadAllText(TestPaths.Data("standin", "index.json")));
        var items = index.RootElement.GetProperty("items").GetProperty(modalityName).EnumerateArray().Select(e => e.GetString()!).ToList();

        // Items go in concurrently, as the worker sends them, so they share micro-batches.
        var embeddings = await Task.WhenAll(items.Select(item => engine.Embedder.EmbedAsync(space, Input(modality, item))));

        var failures = new List<string>();
        foreach (var expert in space.Plans[modality].Experts)
        {
            var key = $"{expert}.{modalityName}";
            var entry = index.RootElement.GetProperty("encoders").GetProperty(key);
            var profile = entry.GetProperty("profile").GetString();
            Assert.Equal(profile, space.EncoderOf(expert, modality).Profile);
            var expected = Npy.Read(TestPaths.Data("standin", entry.GetProperty("file").GetString()!));
            Assert.Equal([items.Count, space.Manifest.Experts[expert].Dimension], expected.Shape);
            var dim = expected.Shape[1];
            var reference = Enumerable.Range(0, items.Count).Select(i => expected.Floats!.AsSpan(i * dim, dim).ToArray()).ToList();

            var worst = double.PositiveInfinity;
            var closestOther = double.NegativeInfinity;
            for (var i = 0; i < items.Count; i++)
            {
                var atom = embeddings[i].Atoms[expert];
                var cos = Cosine(atom, reference[i]);
                worst = Math.Min(worst, cos);
                // Different items can be close under a tiny stand-in; the item must still be nearest its own reference.
                for (var j = 0; j < items.Count; j++)
                    if (j != i) closestOther = Math.Max(closestOther, Cosine(atom, reference[j]));
                if (!(1 - cos <= MaxOneMinusCosine(profile!)))
                    failures.Add($"{key} ({profile}) {items[i]}: 1 − cosine {1 - cos:E2} > {MaxOneMinusCosine(profile!):E0}");
                else if (Enumerable.Range(0, items.Count).Any(j => j != i && Cosine(atom, reference[j]) >= cos))
                    failures.Add($"{key} ({profile}) {items[i]}: closer to another item's reference than to its own");
            }
            output.WriteLine($"{variant} {key,-24} {profile,-17} min cosine {worst:F8} (1 − cos = {1 - worst:E2}); max cosine to another item {closestOther:F5}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static MediaInput Input(Modality modality, string item)
    {
        if (modality == Modality.Text) return MediaInput.FromText(item);
        var path = TestPaths.Sample(item);
        return new MediaInput(modality, File.ReadAllBytes(path), FileName: path);
    }

    private static double Cosine(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        return dot / Math.Sqrt(na * nb);
    }
}
