using System.Collections.Concurrent;
using Confluent.Kafka;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// Which partitions the worker owns and how many of their messages are in flight, shared by the
/// consume loop (which adds), the batch writer (which completes) and the rebalance callbacks.
/// </summary>
internal sealed class PartitionBook(IngestionMetrics metrics)
{
    private readonly ConcurrentDictionary<TopicPartition, int> _pending = new();
    private readonly ConcurrentDictionary<TopicPartition, bool> _revoked = new();
    private int _inFlight;
    private volatile bool _writerStopped;

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Set once the writer will finish nothing more (a fatal stop): revocations stop waiting for it.</summary>
    public bool WriterStopped
    {
        get => _writerStopped;
        set => _writerStopped = value;
    }

    public void Consumed(TopicPartition partition)
    {
        _pending.AddOrUpdate(partition, 1, (_, n) => n + 1);
        Interlocked.Increment(ref _inFlight);
        metrics.Consumed();
    }

    public void Completed(TopicPartition partition)
    {
        _pending.AddOrUpdate(partition, 0, (_, n) => n - 1);
        Interlocked.Decrement(ref _inFlight);
        metrics.Completed();
    }

    public bool IsRevoked(TopicPartition partition) => _revoked.ContainsKey(partition);

    public void Assigned(IEnumerable<TopicPartition> partitions)
    {
        foreach (var tp in partitions) _revoked.TryRemove(tp, out _);
    }

    /// <summary>
    /// Before a partition goes (cooperative rebalance), lets the writer finish what was consumed from
    /// it, so its new owner never races an older write of ours for the same key; then marks it revoked.
    /// </summary>
    public void Revoke(IEnumerable<TopicPartition> partitions, TimeSpan wait)
    {
        var deadline = DateTime.UtcNow + wait;
        foreach (var tp in partitions)
        {
            while (!_writerStopped && _pending.GetValueOrDefault(tp) > 0 && DateTime.UtcNow < deadline)
                Thread.Sleep(20);
            _revoked[tp] = true;
        }
    }

    /// <summary>Partitions lost without a chance to finish (session timeout): their messages are left to the new owner.</summary>
    public void Lost(IEnumerable<TopicPartition> partitions)
    {
        foreach (var tp in partitions) _revoked[tp] = true;
    }
}
