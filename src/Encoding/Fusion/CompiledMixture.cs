using System.Buffers;
using System.Runtime.ExceptionServices;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace FreeBind.Encoding.Fusion;

/// <summary>
/// One projector mixture (<see cref="MixtureGraphBuilder"/>) in one ONNX Runtime session, run on
/// rows: a whole batch at once (<see cref="Run"/>), or one item at a time through a
/// <see cref="MicroBatcher{TIn,TOut}"/> (<see cref="RunAsync"/>).
/// <para>
/// On the CPU the session has no intra-op thread pool. The engine splits a batch's rows into at
/// most <c>parallelism</c> chunks and runs them as concurrent <c>Run</c>s on the shared session:
/// one join per batch instead of a pool barrier per operator, and no pool thread left spinning
/// after a <c>Run</c> to take CPU from whatever runs next (docs/benchmarks.md, fusion findings).
/// </para>
/// </summary>
internal sealed class CompiledMixture : IAsyncDisposable
{
    /// <summary>
    /// Fewest rows worth a chunk of their own: every chunk streams all projector weights once, so
    /// below this a second chunk costs more CPU than it saves time (docs/benchmarks.md, fusion).
    /// </summary>
    public const int MinRowsPerChunk = 32;

    private readonly InferenceSession _session;
    private readonly string[] _inputNames;
    private readonly int[] _inputWidths;
    private readonly int _parallelism;
    private readonly RunOptions _runOptions = new();
    private readonly MicroBatcher<float[][], float[]> _batcher;

    /// <param name="label">What this mixture is, for errors and logs.</param>
    /// <param name="session">A session over a <see cref="MixtureGraphBuilder"/> graph.</param>
    /// <param name="parallelism">Concurrent <c>Run</c>s a batch may be split into (1 = one <c>Run</c> per batch).</param>
    /// <param name="options">Micro-batching settings for <see cref="RunAsync"/>.</param>
    public CompiledMixture(string label, InferenceSession session, int parallelism, OnnxOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parallelism, 1);
        Label = label;
        _session = session;
        _parallelism = parallelism;
        _inputNames = [.. Enumerable.Range(0, session.InputMetadata.Count).Select(MixtureGraphBuilder.InputName)];
        _inputWidths = [.. _inputNames.Select(n => session.InputMetadata[n].Dimensions[^1])];
        OutputWidth = session.OutputMetadata[MixtureGraphBuilder.OutputName].Dimensions[^1];
        _batcher = new MicroBatcher<float[][], float[]>(RunItems, options.MaxBatch, TimeSpan.FromMilliseconds(options.MaxWaitMs), options.QueueCapacity);
    }

    public string Label { get; }

    /// <summary>Width of each input (<c>x0</c>, <c>x1</c>, …): one per projector set.</summary>
    public IReadOnlyList<int> InputWidths => _inputWidths;

    public int OutputWidth { get; }

    /// <summary>Runs one item (one row per input) through the micro-batcher.</summary>
    public Task<float[]> RunAsync(float[][] row, CancellationToken cancellationToken = default) => _batcher.SubmitAsync(row, cancellationToken);

    /// <summary>
    /// Runs <paramref name="rows"/> rows: <paramref name="inputs"/>[s] holds rows × <see cref="InputWidths"/>[s]
    /// values, <paramref name="output"/> receives rows × <see cref="OutputWidth"/>.
    /// </summary>
    public void Run(IReadOnlyList<float[]> inputs, int rows, float[] output)
    {
        if (inputs.Count != _inputWidths.Length) throw new ArgumentException($"{Label}: {inputs.Count} inputs given, the mixture has {_inputWidths.Length}");
        for (var s = 0; s < inputs.Count; s++)
            if (inputs[s].Length < rows * _inputWidths[s]) throw new ArgumentException($"{Label}: input x{s} holds {inputs[s].Length} values, {rows} rows need {rows * _inputWidths[s]}");
        if (output.Length < rows * OutputWidth) throw new ArgumentException($"{Label}: output holds {output.Length} values, {rows} rows need {rows * OutputWidth}");
        if (rows == 0) return;
        var chunks = Math.Clamp(rows / MinRowsPerChunk, 1, _parallelism);
        if (chunks == 1)
        {
            RunRows(inputs, 0, rows, output);
            return;
        }
        try
        {
            // The calling thread takes a chunk too; if no pool thread is free the chunks simply run in turn.
            Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = chunks }, c =>
            {
                var start = (int)((long)rows * c / chunks);
                var end = (int)((long)rows * (c + 1) / chunks);
                RunRows(inputs, start, end - start, output);
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            ExceptionDispatchInfo.Throw(e.InnerExceptions[0]);
        }
    }

    private void RunRows(IReadOnlyList<float[]> inputs, int start, int count, float[] output)
    {
        var values = new OrtValue[inputs.Count];
        try
        {
            for (var s = 0; s < inputs.Count; s++)
            {
                var w = _inputWidths[s];
                values[s] = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, inputs[s].AsMemory(start * w, count * w), [count, w]);
            }
            using var result = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
                output.AsMemory(start * OutputWidth, count * OutputWidth), [count, OutputWidth]);
            _session.Run(_runOptions, _inputNames, values, [MixtureGraphBuilder.OutputName], [result]);
        }
        finally
        {
            foreach (var v in values) v?.Dispose();
        }
    }

    // The micro-batcher's batch: gather each input's rows, run, hand every item its own row.
    private IReadOnlyList<float[]> RunItems(IReadOnlyList<float[][]> items)
    {
        var rows = items.Count;
        var inputs = new float[_inputWidths.Length][];
        var output = ArrayPool<float>.Shared.Rent(rows * OutputWidth);
        try
        {
            for (var s = 0; s < inputs.Length; s++)
            {
                var w = _inputWidths[s];
                inputs[s] = ArrayPool<float>.Shared.Rent(rows * w);
                for (var i = 0; i < rows; i++)
                {
                    var row = items[i][s];
                    if (row.Length != w) throw new ArgumentException($"{Label}: input x{s} of item {i} has {row.Length} values, not {w}");
                    row.CopyTo(inputs[s], i * w);
                }
            }
            Run(inputs, rows, output);
            var results = new float[rows][];
            for (var i = 0; i < rows; i++) results[i] = output.AsSpan(i * OutputWidth, OutputWidth).ToArray();
            return results;
        }
        finally
        {
            foreach (var buffer in inputs)
                if (buffer is not null) ArrayPool<float>.Shared.Return(buffer);
            ArrayPool<float>.Shared.Return(output);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _batcher.DisposeAsync().ConfigureAwait(false);
        _session.Dispose();
        _runOptions.Dispose();
    }
}
