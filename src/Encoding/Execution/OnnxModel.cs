using System.Buffers;
using FreeBind.Encoding.Preprocessing;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace FreeBind.Encoding.Execution;

/// <summary>
/// One ONNX model = one shared <see cref="InferenceSession"/> (Run is thread-safe) behind a
/// <see cref="MicroBatcher{TIn,TOut}"/>. Items are concatenated along their leading (rows)
/// dimension into pooled buffers; the first output is split back per item.
/// </summary>
public sealed class OnnxModel : IAsyncDisposable
{
    private readonly InferenceSession _session;
    private readonly MicroBatcher<IReadOnlyList<ModelTensor>, float[]> _batcher;
    private readonly string[] _inputNames;
    private readonly string _outputName;

    public OnnxModel(string label, InferenceSession session, OnnxOptions options)
    {
        Label = label;
        _session = session;
        _inputNames = [.. session.InputMetadata.Keys];
        _outputName = session.OutputMetadata.Keys.First();
        var outDims = session.OutputMetadata[_outputName].Dimensions;
        OutputWidth = outDims.Length > 0 && outDims[^1] > 0 ? outDims[^1] : -1;
        _batcher = new MicroBatcher<IReadOnlyList<ModelTensor>, float[]>(RunBatch, options.MaxBatch,
            TimeSpan.FromMilliseconds(options.MaxWaitMs), options.QueueCapacity);
    }

    /// <summary>What this model is, for errors and logs (expert/modality or projector set).</summary>
    public string Label { get; }

    /// <summary>Width of one output row, or -1 when the model does not declare it.</summary>
    public int OutputWidth { get; }

    public IReadOnlyList<string> InputNames => _inputNames;

    public MicroBatcher<IReadOnlyList<ModelTensor>, float[]> Batcher => _batcher;

    /// <summary>Runs one item through the micro-batcher; returns its output rows, flattened.</summary>
    public Task<float[]> RunAsync(IReadOnlyList<ModelTensor> inputs, CancellationToken cancellationToken = default) =>
        _batcher.SubmitAsync(inputs, cancellationToken);

    /// <summary>Runs a batch directly (one <c>Run</c>); returns each item's output rows, flattened.</summary>
    public IReadOnlyList<float[]> RunBatch(IReadOnlyList<IReadOnlyList<ModelTensor>> items)
    {
        if (items.Count == 0) return [];
        var values = new List<OrtValue>(_inputNames.Length);
        var rented = new List<(float[]? F, long[]? L)>(_inputNames.Length);
        try
        {
            var rows = 0;
            var itemRows = new int[items.Count];
            for (var n = 0; n < _inputNames.Length; n++)
            {
                var first = Pick(items[0], n);
                var rowLength = first.RowLength;
                var total = 0;
                for (var i = 0; i < items.Count; i++)
                {
                    var t = Pick(items[i], n);
                    if (t.RowLength != rowLength || t.IsFloat != first.IsFloat)
                        throw new ArgumentException($"{Label}: input '{_inputNames[n]}' of item {i} has shape [{string.Join(',', t.Shape)}], unlike [{string.Join(',', first.Shape)}]");
                    if (n == 0) itemRows[i] = t.Rows;
                    else if (t.Rows != itemRows[i]) throw new ArgumentException($"{Label}: inputs of item {i} disagree on their row count");
                    total += t.Rows;
                }
                rows = total;
                var shape = first.Shape.Select(d => (long)d).ToArray();
                shape[0] = total;
                if (first.IsFloat)
                {
                    var buffer = ArrayPool<float>.Shared.Rent(total * rowLength);
                    rented.Add((buffer, null));
                    var offset = 0;
                    foreach (var item in items)
                    {
                        var src = Pick(item, n).Floats!;
                        src.CopyTo(buffer.AsSpan(offset));
                        offset += src.Length;
                    }
                    values.Add(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer.AsMemory(0, offset), shape));
                }
                else
                {
                    var buffer = ArrayPool<long>.Shared.Rent(total * rowLength);
                    rented.Add((null, buffer));
                    var offset = 0;
                    foreach (var item in items)
                    {
                        var src = Pick(item, n).Longs!;
                        src.CopyTo(buffer.AsSpan(offset));
                        offset += src.Length;
                    }
                    values.Add(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer.AsMemory(0, offset), shape));
                }
            }
            using var runOptions = new RunOptions();
            using var outputs = _session.Run(runOptions, _inputNames, values, [_outputName]);
            var output = outputs[0];
            var outShape = output.GetTensorTypeAndShape().Shape;
            var data = output.GetTensorDataAsSpan<float>();
            if (outShape.Length == 0 || outShape[0] != rows)
                throw new InvalidOperationException($"{Label}: model returned {(outShape.Length == 0 ? 0 : outShape[0])} rows for {rows} input rows");
            var width = data.Length / rows;
            var results = new float[items.Count][];
            var at = 0;
            for (var i = 0; i < items.Count; i++)
            {
                results[i] = data.Slice(at * width, itemRows[i] * width).ToArray();
                at += itemRows[i];
            }
            return results;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
            foreach (var (f, l) in rented)
            {
                if (f is not null) ArrayPool<float>.Shared.Return(f);
                if (l is not null) ArrayPool<long>.Shared.Return(l);
            }
        }
    }

    // A single-input model binds by position; otherwise inputs bind by name.
    private ModelTensor Pick(IReadOnlyList<ModelTensor> item, int inputIndex)
    {
        if (_inputNames.Length == 1 && item.Count == 1) return item[0];
        var name = _inputNames[inputIndex];
        foreach (var t in item)
            if (t.Name == name) return t;
        throw new ArgumentException($"{Label}: the model needs input '{name}' but the item provides {string.Join(", ", item.Select(t => t.Name))}");
    }

    /// <summary>Runs one zero-filled row so the first real request does not pay for lazy initialisation; returns the width of an output row.</summary>
    public int WarmUp()
    {
        var item = new List<ModelTensor>();
        foreach (var name in _inputNames)
        {
            var meta = _session.InputMetadata[name];
            var shape = meta.Dimensions.Select(d => d > 0 ? d : 1).ToArray();
            shape[0] = 1;
            var count = shape.Aggregate(1, (a, d) => a * d);
            item.Add(meta.ElementDataType == TensorElementType.Int64
                ? ModelTensor.Int64(name, shape, new long[count])
                : ModelTensor.Float32(name, shape, new float[count]));
        }
        return RunBatch([item])[0].Length;
    }

    /// <summary>Opens <paramref name="path"/>, runs one zero-filled row and returns the width of its output row (for files that leave it symbolic).</summary>
    public static int ProbeOutputWidth(SessionFactory sessions, string path, string label)
    {
        var model = new OnnxModel(label, sessions.Create(path), sessions.Options);
        try
        {
            return model.WarmUp();
        }
        finally
        {
            model.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _batcher.DisposeAsync().ConfigureAwait(false);
        _session.Dispose();
    }
}
