using System.Numerics.Tensors;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Fusion;
using FreeBind.Encoding.Onnx;
using FreeBind.Encoding.Preprocessing;
using Microsoft.ML.OnnxRuntime;

namespace FreeBind.Benchmarks;

/// <summary>
/// (a) The fusion path as the engine runs a bond step of <see cref="FusionEngine.FuseBatch"/>: the
/// compiled mixture (<see cref="MixtureGraphBuilder"/>) in a single-threaded session, a batch's rows
/// split into concurrent runs over the cores (<see cref="CompiledMixture"/>).
/// </summary>
internal sealed class FusionPath(CompiledMixture mixture, Workload workload) : IAsyncDisposable
{
    private readonly Dictionary<int, float[]> _outputs = [];

    public static FusionPath Create(SessionFactory sessions, Workload workload) =>
        new(FusionEngine.Compile(sessions, "imagebind++ audio mixture", workload.Weights), workload);

    public CompiledMixture Mixture => mixture;

    public float[] Run(int batch)
    {
        if (!_outputs.TryGetValue(batch, out var output)) _outputs[batch] = output = new float[batch * Workload.OutputDim];
        mixture.Run(workload.Atoms, batch, output);
        return output;
    }

    public float[] RunFlat(int batch) => [.. Run(batch)];

    /// <summary>The per-item path: <paramref name="batch"/> items submitted at once through the mixture's micro-batcher.</summary>
    public float[] RunItems(int batch)
    {
        var d = Workload.InputDim;
        var results = Task.WhenAll(Enumerable.Range(0, batch).Select(i => mixture.RunAsync(
            [workload.Atoms[0].AsSpan(i * d, d).ToArray(), workload.Atoms[1].AsSpan(i * d, d).ToArray()]))).GetAwaiter().GetResult();
        return [.. results.SelectMany(r => r)];
    }

    public ValueTask DisposeAsync() => mixture.DisposeAsync();
}

/// <summary>
/// (a0) The engine as it ran before: the same graph in one session from <see cref="SessionFactory.Create(byte[])"/>
/// (ONNX Runtime's intra-op pool, one thread per core, spinning as ORT's defaults), one
/// <see cref="OnnxModel.RunBatch"/> per batch, items as the micro-batcher hands them over.
/// </summary>
internal sealed class EarlierEnginePath(OnnxModel model, Workload workload) : IAsyncDisposable
{
    private readonly Dictionary<int, IReadOnlyList<IReadOnlyList<ModelTensor>>> _items = [];

    public static EarlierEnginePath Create(SessionFactory sessions, Workload workload) =>
        new(new OnnxModel("imagebind++ audio mixture (earlier engine)", sessions.Create(MixtureGraphBuilder.Build(workload.Weights)), sessions.Options), workload);

    public IReadOnlyList<float[]> Run(int batch) => model.RunBatch(Items(batch));

    public float[] RunFlat(int batch) => [.. Run(batch).SelectMany(r => r)];

    private IReadOnlyList<IReadOnlyList<ModelTensor>> Items(int batch)
    {
        if (_items.TryGetValue(batch, out var items)) return items;
        var d = Workload.InputDim;
        items = [.. Enumerable.Range(0, batch).Select(i => (IReadOnlyList<ModelTensor>)[
            ModelTensor.Float32(MixtureGraphBuilder.InputName(0), [1, d], workload.Atoms[0].AsSpan(i * d, d).ToArray()),
            ModelTensor.Float32(MixtureGraphBuilder.InputName(1), [1, d], workload.Atoms[1].AsSpan(i * d, d).ToArray())])];
        _items[batch] = items;
        return items;
    }

    public ValueTask DisposeAsync() => model.DisposeAsync();
}

/// <summary>
/// (b) The baseline: ONNX Runtime CPU running the 14 upstream-shaped projector files as exported
/// (one session each, one <c>Run</c> each per batch), then mean and normalisation in C#.
/// </summary>
internal sealed class ProjectorSessionsBaseline : IDisposable
{
    private readonly List<(InferenceSession Session, int Set, string Input, string Output)> _sessions = [];
    private readonly Workload _workload;
    private readonly RunOptions _runOptions = new();

    public ProjectorSessionsBaseline(Workload workload, Func<string, InferenceSession> open)
    {
        _workload = workload;
        for (var s = 0; s < workload.Files.Count; s++)
            foreach (var file in workload.Files[s])
            {
                var session = open(file);
                _sessions.Add((session, s, session.InputMetadata.Keys.Single(), session.OutputMetadata.Keys.First()));
            }
    }

    public float[] Run(int batch)
    {
        var d = Workload.InputDim;
        var mean = new float[batch * Workload.OutputDim];
        using var g = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _workload.Atoms[0].AsMemory(0, batch * d), [batch, d]);
        using var m = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _workload.Atoms[1].AsMemory(0, batch * d), [batch, d]);
        foreach (var (session, set, input, output) in _sessions)
        {
            using var outputs = session.Run(_runOptions, [input], [set == 0 ? g : m], [output]);
            TensorPrimitives.Add(mean, outputs[0].GetTensorDataAsSpan<float>(), mean);
        }
        TensorPrimitives.Multiply(mean, 1f / _sessions.Count, mean);
        for (var r = 0; r < batch; r++) Workload.NormalizeRow(mean.AsSpan(r * Workload.OutputDim, Workload.OutputDim));
        return mean;
    }

    public void Dispose()
    {
        foreach (var s in _sessions) s.Session.Dispose();
        _runOptions.Dispose();
    }
}
