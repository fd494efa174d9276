using System.Diagnostics;
using System.Threading.Channels;

namespace FreeBind.Encoding.Execution;

/// <summary>
/// Merges concurrent single-item calls into batches: a batch closes when it holds
/// <c>maxBatch</c> items or when its first item has waited <c>maxWait</c>. Each caller gets its own
/// result (or the batch's exception). The queue is bounded, so a full queue holds submitters back.
/// </summary>
public sealed class MicroBatcher<TIn, TOut> : IAsyncDisposable
{
    private readonly Func<IReadOnlyList<TIn>, IReadOnlyList<TOut>> _run;
    private readonly int _maxBatch;
    private readonly TimeSpan _maxWait;
    private readonly Channel<(TIn Item, TaskCompletionSource<TOut> Result)> _queue;
    private readonly Task _loop;
    private long _batches;
    private long _items;

    public MicroBatcher(Func<IReadOnlyList<TIn>, IReadOnlyList<TOut>> run, int maxBatch, TimeSpan maxWait, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        _run = run;
        _maxBatch = maxBatch;
        _maxWait = maxWait;
        _queue = Channel.CreateBounded<(TIn, TaskCompletionSource<TOut>)>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _loop = Task.Factory.StartNew(LoopAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    /// <summary>Items waiting for a batch.</summary>
    public int QueueLength => _queue.Reader.CanCount ? _queue.Reader.Count : 0;

    /// <summary>Batches run and items served so far (read by <see cref="EncoderMetrics"/>).</summary>
    internal (long Batches, long Items) Counters => (Interlocked.Read(ref _batches), Interlocked.Read(ref _items));

    public async Task<TOut> SubmitAsync(TIn item, CancellationToken cancellationToken = default)
    {
        var tcs = new TaskCompletionSource<TOut>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _queue.Writer.WriteAsync((item, tcs), cancellationToken).ConfigureAwait(false);
        return await tcs.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task LoopAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<(TIn Item, TaskCompletionSource<TOut> Result)>(_maxBatch);
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            if (!reader.TryRead(out var first)) continue;
            batch.Add(first);
            var deadline = Stopwatch.GetTimestamp() + (long)(_maxWait.TotalSeconds * Stopwatch.Frequency);
            while (batch.Count < _maxBatch)
            {
                if (reader.TryRead(out var next))
                {
                    batch.Add(next);
                    continue;
                }
                var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                if (remaining <= TimeSpan.Zero) break;
                using var timeout = new CancellationTokenSource(remaining);
                try
                {
                    if (!await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false)) break;
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            Execute(batch);
            batch.Clear();
        }
    }

    private void Execute(List<(TIn Item, TaskCompletionSource<TOut> Result)> batch)
    {
        try
        {
            var results = _run(batch.Select(b => b.Item).ToList());
            if (results.Count != batch.Count)
                throw new InvalidOperationException($"batch function returned {results.Count} results for {batch.Count} items");
            for (var i = 0; i < batch.Count; i++) batch[i].Result.TrySetResult(results[i]);
            Interlocked.Increment(ref _batches);
            Interlocked.Add(ref _items, batch.Count);
        }
        catch (Exception e)
        {
            foreach (var b in batch) b.Result.TrySetException(e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }
}
