using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Preprocessing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind onnx-run</c> (diagnostic, hidden): runs one ONNX file on .npy inputs with the product's
/// own ONNX Runtime and session settings and writes its first output as .npy. tools/export checks
/// every file it writes with it (onnxruntime is not installable in Debian's Python), and a user can
/// diff a model's raw output against their PyTorch without going through a space.
/// </summary>
internal static class OnnxRunCommand
{
    /// <summary>One run of the model: an .npy file per input name, and where the first output goes.</summary>
    private sealed record RunSpec(Dictionary<string, string> Inputs, string Output);

    public static Command Build()
    {
        var model = new Option<FileInfo>("--model") { Description = "The .onnx file (its .onnx.data beside it, if any)", Required = true };
        var runs = new Option<FileInfo>("--runs")
        {
            Description = "JSON list of runs: [{\"inputs\": {\"input_ids\": \"ids.npy\"}, \"output\": \"out.npy\"}, …]; one session serves them all",
            Required = true,
        };
        var command = new Command("onnx-run", "Run an ONNX file on .npy inputs and write its first output as .npy (diagnostic)")
        {
            model, runs,
        };
        command.Hidden = true;
        command.SetAction((result, ct) => FreeBindCli.Guard(async () =>
        {
            var modelPath = result.GetValue(model)!.FullName;
            if (!File.Exists(modelPath)) throw new FileNotFoundException($"model '{modelPath}' does not exist");
            var specs = JsonSerializer.Deserialize<List<RunSpec>>(await File.ReadAllTextAsync(result.GetValue(runs)!.FullName, ct),
                new JsonSerializerOptions { PropertyNameCaseInsensitive = true })
                ?? throw new FormatException("--runs holds no list of runs");
            using var host = CliHost.Build();
            var factory = host.Services.GetRequiredService<SessionFactory>();
            using var session = OpenSession(factory, modelPath);
            Console.WriteLine(JsonSerializer.Serialize(new { provider = factory.ActiveProvider }));
            for (var i = 0; i < specs.Count; i++)
            {
                ct.ThrowIfCancellationRequested();
                var (rows, seconds) = RunOnce(session, specs[i]);
                Console.WriteLine(JsonSerializer.Serialize(new { run = i, rows, seconds = Math.Round(seconds, 6) }));
            }
            return 0;
        }));
        return command;
    }

    private static InferenceSession OpenSession(SessionFactory factory, string path)
    {
        try
        {
            return factory.Create(path);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"ONNX Runtime cannot load '{path}': {e.Message.Split('\n')[0]}", e);
        }
    }

    private static (long Rows, double Seconds) RunOnce(InferenceSession session, RunSpec spec)
    {
        var names = session.InputMetadata.Keys.ToList();
        var unknown = spec.Inputs.Keys.Except(names).ToList();
        var absent = names.Except(spec.Inputs.Keys).ToList();
        if (unknown.Count > 0 || absent.Count > 0)
            throw new ArgumentException($"the model's inputs are {string.Join(", ", names)}; the run gives {string.Join(", ", spec.Inputs.Keys)}");
        var values = new List<OrtValue>(names.Count);
        try
        {
            foreach (var name in names)
            {
                var array = Npy.Read(spec.Inputs[name]);
                var shape = array.Shape.Select(d => (long)d).ToArray();
                var wantsFloat = session.InputMetadata[name].ElementDataType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float;
                if (wantsFloat != array.Floats is not null)
                    throw new ArgumentException($"input '{name}' is {(wantsFloat ? "float32" : "int64")} in the model but {spec.Inputs[name]} is not");
                values.Add(array.Floats is not null
                    ? OrtValue.CreateTensorValueFromMemory(array.Floats, shape)
                    : OrtValue.CreateTensorValueFromMemory(array.Longs!, shape));
            }
            var output = session.OutputMetadata.Keys.First();
            var watch = Stopwatch.StartNew();
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, names, values, [output]);
            var seconds = watch.Elapsed.TotalSeconds;
            var result = outputs[0];
            var outShape = result.GetTensorTypeAndShape().Shape;
            if (result.GetTensorTypeAndShape().ElementDataType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float)
                throw new InvalidDataException($"output '{output}' is not float32");
            using var stream = File.Create(spec.Output);
            Npy.Write(stream, [.. outShape.Select(d => checked((int)d))], result.GetTensorDataAsSpan<float>().ToArray(), null);
            return (outShape.Length > 0 ? outShape[0] : 0, seconds);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }
}
