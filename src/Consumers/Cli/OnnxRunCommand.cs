using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Preprocessing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind onnx-run</c> (diagnostic, hidden): runs an ONNX file on .npy inputs with the product's
/// own ONNX Runtime and session settings and writes its first output as .npy. tools/export checks
/// every file it writes with it (onnxruntime is not installable in Debian's Python), and a user can
/// diff a model's raw output against their PyTorch without going through a space. With
/// <c>--serve</c> it reads one request per line on stdin (<c>{"model": …, "runs": […]}</c>) and
/// answers each with one line, so an export of a hundred files starts one process, not a hundred.
/// </summary>
internal static class OnnxRunCommand
{
    /// <summary>One run of the model: an .npy file per input name, and where the first output goes.</summary>
    private sealed record RunSpec(Dictionary<string, string> Inputs, string Output);

    /// <summary>One <c>--serve</c> request: a model and its runs.</summary>
    private sealed record Request(string Model, List<RunSpec> Runs);

    private static readonly JsonSerializerOptions Json = new() { PropertyNameCaseInsensitive = true };

    public static Command Build()
    {
        var model = new Option<FileInfo>("--model") { Description = "The .onnx file (its .onnx.data beside it, if any)" };
        var runs = new Option<FileInfo>("--runs")
        {
            Description = "JSON list of runs: [{\"inputs\": {\"input_ids\": \"ids.npy\"}, \"output\": \"out.npy\"}, …]; one session serves them all",
        };
        var serve = new Option<bool>("--serve") { Description = "Read {\"model\": …, \"runs\": […]} requests, one per line on stdin; answer each with one JSON line" };
        var command = new Command("onnx-run", "Run an ONNX file on .npy inputs and write its first output as .npy (diagnostic)")
        {
            model, runs, serve,
        };
        command.Hidden = true;
        command.SetAction((result, ct) => FreeBindCli.Guard(async () =>
        {
            using var host = CliHost.Build();
            var factory = host.Services.GetRequiredService<SessionFactory>();
            if (result.GetValue(serve)) return await ServeAsync(factory, ct);
            if (result.GetValue(model) is not { } file || result.GetValue(runs) is not { } list)
                throw new ArgumentException("give --model and --runs, or --serve");
            var specs = JsonSerializer.Deserialize<List<RunSpec>>(await File.ReadAllTextAsync(list.FullName, ct), Json)
                ?? throw new FormatException("--runs holds no list of runs");
            var seconds = Execute(factory, file.FullName, specs, ct);
            Console.WriteLine(JsonSerializer.Serialize(new { provider = factory.ActiveProvider, seconds }));
            return 0;
        }));
        return command;
    }

    private static double[] Execute(SessionFactory factory, string modelPath, List<RunSpec> specs, CancellationToken ct)
    {
        if (!File.Exists(modelPath)) throw new FileNotFoundException($"model '{modelPath}' does not exist");
        using var session = OpenSession(factory, modelPath);
        var seconds = new double[specs.Count];
        for (var i = 0; i < specs.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            seconds[i] = Math.Round(RunOnce(session, specs[i]), 6);
        }
        return seconds;
    }

    // Each request is answered on its own line; an expected failure is an answer, not the end of the process.
    private static async Task<int> ServeAsync(SessionFactory factory, CancellationToken ct)
    {
        while (await Console.In.ReadLineAsync(ct) is { } line)
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            string answer;
            try
            {
                var request = JsonSerializer.Deserialize<Request>(line, Json) ?? throw new FormatException("empty request");
                var seconds = Execute(factory, Path.GetFullPath(request.Model), request.Runs, ct);
                answer = JsonSerializer.Serialize(new { ok = true, provider = factory.ActiveProvider, seconds });
            }
            catch (Exception e) when (e is JsonException or FormatException or ArgumentException or InvalidDataException
                                          or FileNotFoundException or OnnxRuntimeException)
            {
                answer = JsonSerializer.Serialize(new { ok = false, error = e.Message.Split('\n')[0] });
            }
            await Console.Out.WriteLineAsync(answer);
            await Console.Out.FlushAsync(ct);
        }
        return 0;
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

    private static double RunOnce(InferenceSession session, RunSpec spec)
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
            return seconds;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }
}
