using System.Security.Cryptography;
using System.Text.Json;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using Xunit.Abstractions;

namespace FreeBind.Tests.Preprocessing;

/// <summary>
/// The C# <c>internvl-vision</c> tensors against HF transformers' own <c>CLIPImageProcessor</c>, not a twin of ours:
/// tests/fixtures/upstream/hf-image.json was written by tools/reference/upstream_hf_image.py, which runs upstream's
/// image_processing_clip.py, image_transforms.py (resize through PIL, center_crop, rescale, normalize) and
/// image_processing_utils.py with InternVL-14B-224px's configuration on the three samples and on the generated images
/// of preprocess_image_text.py (format bookkeeping there, such as channel-axis inference, is a stand-in: see its
/// docstring). For each input the fixture holds its SHA-256, the per-channel sums of the [3,224,224] tensor and every
/// 997th value.
/// </summary>
public sealed class HfImageUpstreamTests(ITestOutputHelper output)
{
    /// <summary>
    /// Measured: every strided value and every channel sum equal to upstream's exactly (0.0 on all 15 tensors). The gate
    /// leaves room for float32 rounding only: one pixel a single uint8 step off moves its value by 1/255/0.229 ≈ 0.017
    /// (the largest std gives the smallest step, 1/255/0.229 ≥ 0.0145 for every channel) and so moves its channel sum by
    /// as much, far above both limits; a strided value misses most pixels, the channel sums see every one.
    /// </summary>
    private const double MaxStridedDiff = 1e-6;
    private const double MaxChannelSumDiff = 1e-3;

    private static readonly PreprocessingOptions Options = new();

    private static readonly Lazy<JsonDocument> Fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("upstream", "hf-image.json"))));

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var c in Fixture.Value.RootElement.GetProperty("cases").EnumerateArray())
            data.Add(c.GetProperty("file").GetString()!, c.GetProperty("opened_with").GetString()!);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Internvl_vision_equals_hf_transformers_clip_image_processor(string file, string openedWith)
    {
        var c = Case(file, openedWith);
        var (strided, sums) = Compare(c);
        output.WriteLine($"{file} ({openedWith}): strided max abs {strided:E3}, channel sums max abs {sums:E3}");

        // Deviation 1 (docs/preprocessing.md): the product applies the EXIF orientation, upstream opens the image as
        // stored. That case must differ from upstream; the same file opened with exif_transpose must be equal.
        if (file == "exif6.jpg" && openedWith == "Image.open")
        {
            Assert.True(strided > 0.01 && sums > 1, $"equal to upstream's unrotated tensor (strided {strided}, sums {sums}): deviation 1 changed?");
            return;
        }

        Assert.True(strided <= MaxStridedDiff, $"strided values max abs {strided}: no longer equal to HF's CLIPImageProcessor (one uint8 step is ≥ 0.0145)");
        Assert.True(sums <= MaxChannelSumDiff, $"channel sums max abs {sums}: some pixel differs from HF's CLIPImageProcessor");
    }

    /// <summary>The fixture covers what the issue asks: the samples, a 2-frame GIF, CMYK, progressive JPEG, a portrait with an odd crop margin.</summary>
    [Fact]
    public void Fixture_covers_the_samples_and_the_generated_edge_images()
    {
        var files = Fixture.Value.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("file").GetString()).ToHashSet();
        string[] required = ["BBQ.jpeg", "toilet.jpeg", "train.jpeg", "anim.gif", "cmyk.jpg", "progressive.jpg", "portrait.png", "exif6.jpg", "gray.png", "alpha.png"];
        Assert.All(required, f => Assert.Contains(f, files));
        var portrait = Case("portrait.png", "Image.open");
        // 300×500 → 224×373: the crop drops 149 rows, an odd margin (74 above, 75 below).
        Assert.Equal([300, 500], portrait.GetProperty("decoded_size").EnumerateArray().Select(v => v.GetInt32()));
    }

    private static JsonElement Case(string file, string openedWith) =>
        Fixture.Value.RootElement.GetProperty("cases").EnumerateArray()
            .Single(c => c.GetProperty("file").GetString() == file && c.GetProperty("opened_with").GetString() == openedWith);

    private static (double Strided, double Sums) Compare(JsonElement c)
    {
        var file = c.GetProperty("file").GetString()!;
        var path = c.GetProperty("kind").GetString() == "sample" ? TestPaths.Sample(file) : TestPaths.Data("preprocess", "hostile", file);
        var bytes = File.ReadAllBytes(path);
        Assert.True(c.GetProperty("sha256").GetString() == Convert.ToHexStringLower(SHA256.HashData(bytes)),
            $"{path} is not the file the fixture was computed from: regenerate it with tools/reference/upstream_hf_image.py");

        var tensor = Assert.Single(PreprocessorRegistry.Create("internvl-vision", [], Options).Process(new MediaInput(Modality.Image, bytes)).Inputs);
        Assert.Equal([1, 3, 224, 224], tensor.Shape);
        var values = tensor.Floats!;
        const int plane = 224 * 224;

        var stride = Fixture.Value.RootElement.GetProperty("stride").GetInt32();
        var want = c.GetProperty("strided").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal((values.Length + stride - 1) / stride, want.Length);
        var strided = want.Select((w, k) => Math.Abs(values[k * stride] - w)).Max();

        var sums = c.GetProperty("channel_sums").EnumerateArray().Select((w, ch) =>
        {
            double s = 0;
            for (var i = ch * plane; i < (ch + 1) * plane; i++)
                s += values[i];
            return Math.Abs(s - w.GetDouble());
        }).Max();
        return (strided, sums);
    }
}
