using FreeBind.Consumers.Cli;
using FreeBind.Encoding.Preprocessing;

namespace FreeBind.Tests.Cli;

/// <summary>
/// <c>freebind onnx-run</c>, the runner tools/export checks every exported file with: the first
/// output of a model on .npy inputs, as the reference computed it; a wrong input is one clear line.
/// </summary>
[Collection(EngineCollection.Name)] // serial with the other tests that redirect the console
public sealed class OnnxRunCommandTests
{
    private static Task<int> Run(params string[] args) => FreeBindCli.Build().Parse(args).InvokeAsync();

    [Fact]
    public async Task Writes_the_first_output_of_a_model_on_npy_inputs()
    {
        // CLAP text: two int64 inputs bound by name; the reference's atoms are its torch twin's output.
        var dir = Directory.CreateTempSubdirectory("onnx-run-").FullName;
        try
        {
            var output = Path.Combine(dir, "out.npy");
            var runs = Path.Combine(dir, "runs.json");
            await File.WriteAllTextAsync(runs, $$"""
                [{"inputs": {"input_ids": "{{Data("clap-general.text.npy")}}", "attention_mask": "{{Data("clap-general.text.attention_mask.npy")}}"},
                  "output": "{{output}}"}]
                """);
            Assert.Equal(0, await Run("onnx-run", "--model", Path.Combine(EngineFixture.Models, "encoders/clap-general/text.onnx"), "--runs", runs));
            var actual = Npy.Read(output);
            var expected = Npy.Read(TestPaths.Data("embed", "atoms", "clap-general.text.npy"));
            Assert.Equal(expected.Shape, actual.Shape);
            for (var i = 0; i < expected.Floats!.Length; i++)
                Assert.True(Math.Abs(expected.Floats[i] - actual.Floats![i]) <= 1e-5f, $"element {i}: {actual.Floats[i]} vs {expected.Floats[i]}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Serves_requests_line_by_line_and_answers_a_bad_one_without_stopping()
    {
        var dir = Directory.CreateTempSubdirectory("onnx-run-").FullName;
        var previousIn = Console.In;
        var previousOut = Console.Out;
        var answers = new StringWriter();
        try
        {
            var model = Path.Combine(EngineFixture.Models, "encoders/imagebind/vision.onnx");
            var good = $$"""{"model": "{{model}}", "runs": [{"inputs": {"pixel_values": "{{Data("imagebind.image.npy")}}"}, "output": "{{Path.Combine(dir, "a.npy")}}"}]}""";
            var wrongInput = $$"""{"model": "{{model}}", "runs": [{"inputs": {"input_ids": "{{Data("imagebind.text.npy")}}"}, "output": "{{Path.Combine(dir, "b.npy")}}"}]}""";
            Console.SetIn(new StringReader(good + "\n" + wrongInput + "\n" + good + "\n"));
            Console.SetOut(answers);
            Assert.Equal(0, await Run("onnx-run", "--serve"));
        }
        finally
        {
            Console.SetIn(previousIn);
            Console.SetOut(previousOut);
        }
        var lines = answers.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(3, lines.Count);
        Assert.True(lines[0].GetProperty("ok").GetBoolean());
        Assert.False(lines[1].GetProperty("ok").GetBoolean());
        Assert.Equal("the model's inputs are pixel_values; the run gives input_ids", lines[1].GetProperty("error").GetString());
        Assert.True(lines[2].GetProperty("ok").GetBoolean());
        Assert.Equal([4, 1024], Npy.Read(Path.Combine(dir, "a.npy")).Shape);
        Directory.Delete(dir, recursive: true);
    }

    private static string Data(string file) => TestPaths.Data("embed", "inputs", file);
}
