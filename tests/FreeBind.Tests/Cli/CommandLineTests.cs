using System.Text.Json;
using FreeBind.Consumers.Cli;
using FreeBind.Encoding.Preprocessing;

namespace FreeBind.Tests.Cli;

/// <summary>The `freebind` subcommands a user runs by hand, end to end on the real sample media.</summary>
[Collection(EngineCollection.Name)]
public sealed class CommandLineTests
{
    private static Task<int> Run(params string[] args) => FreeBindCli.Build().Parse(args).InvokeAsync();

    [Fact]
    public async Task Embed_takes_real_files_and_text_through_every_profile()
    {
        // internvl-ib-ft++ uses all eight preprocessing profiles.
        var output = Path.GetTempFileName();
        try
        {
            var code = await Run("embed", "--space", EngineFixture.Manifest("internvl-ib-ft++"), "--models", EngineFixture.Models,
                "--image", TestPaths.Sample("BBQ.jpeg"), "--image", TestPaths.Sample("train.jpeg"),
                "--audio", TestPaths.Sample("toilet.wav"), "--text", "an audio of train", "--output", output);
            Assert.Equal(0, code);
            var lines = File.ReadAllLines(output);
            Assert.Equal(4, lines.Length);
            foreach (var line in lines)
            {
                using var doc = JsonDocument.Parse(line);
                Assert.Equal(768, doc.RootElement.GetProperty("vector").GetArrayLength());
                Assert.True(doc.RootElement.GetProperty("experts").EnumerateObject().Any());
            }

            // The atoms written by embed fuse back to the same vectors (the backfill path).
            var refused = Path.GetTempFileName();
            Assert.Equal(0, await Run("fuse", "--space", EngineFixture.Manifest("internvl-ib-ft++"), "--models", EngineFixture.Models,
                "--input", output, "--output", refused));
            var embedded = Fusion.Jsonl.Vectors(output);
            var fused = Fusion.Jsonl.Vectors(refused);
            Assert.All(embedded, kv => Assert.True(Fusion.Jsonl.MaxAbsDiff(kv.Value, fused[kv.Key]) <= 1e-6f));
            File.Delete(refused);
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public async Task Embed_refuses_a_corrupt_file_with_a_clear_error()
    {
        var corrupt = Path.GetTempFileName() + ".jpeg";
        await File.WriteAllBytesAsync(corrupt, File.ReadAllBytes(TestPaths.Sample("BBQ.jpeg"))[..3000]);
        var error = new StringWriter();
        var previous = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(1, await Run("embed", "--space", EngineFixture.Manifest("imagebind"), "--models", EngineFixture.Models, "--image", corrupt));
        }
        finally
        {
            Console.SetError(previous);
            File.Delete(corrupt);
        }
        Assert.Contains("error: ", error.ToString());
        Assert.Contains("truncated", error.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Preprocess_writes_the_exact_model_tensor_as_npy()
    {
        var output = Path.GetTempFileName() + ".npy";
        try
        {
            Assert.Equal(0, await Run("preprocess", "--profile", "imagebind-vision", "--output", output, TestPaths.Sample("toilet.jpeg")));
            var actual = Npy.Read(output);
            var expected = Npy.Read(TestPaths.Data("preprocess", "images", "toilet.imagebind-vision.npy"));
            Assert.Equal(expected.Shape[^3..], actual.Shape[^3..]);
            Assert.Equal(expected.Floats, actual.Floats);

            Assert.Equal(0, await Run("preprocess", "--profile", "imagebind-text", "--tokenizer", TestPaths.ClipVocab, "--output", output, "an audio of train"));
            var tokens = Npy.Read(output);
            Assert.Equal([1, 77], tokens.Shape);
            Assert.Equal(49406, tokens.Longs![0]);
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public async Task Spaces_validate_reports_every_shipped_manifest_ok()
    {
        var stdout = new StringWriter();
        var previous = Console.Out;
        Console.SetOut(stdout);
        try
        {
            Assert.Equal(0, await Run("spaces", "validate", "--all", "--models", EngineFixture.Models));
        }
        finally
        {
            Console.SetOut(previous);
        }
        Assert.Equal(6, stdout.ToString().Split('\n').Count(l => l.StartsWith("ok ", StringComparison.Ordinal)));
    }
}
