using System.Diagnostics.Metrics;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// The worker's instruments, on the process's <c>FreeBind.Pipeline</c> meter (one per host, made by
/// its <see cref="IMeterFactory"/>): what OpenTelemetry exports, and what tests and benchmarks read
/// with a <see cref="MeterListener"/> (<see cref="IngestionMetricsListener"/>).
/// </summary>
public sealed class IngestionMetrics
{
    public const string MeterName = "FreeBind.Pipeline";

    /// <summary>Messages made durable: tag <c>outcome</c> = <c>stored</c>, <c>deleted</c> or <c>dead_lettered</c> (then also <c>error.class</c>).</summary>
    public const string Messages = "freebind.ingestion.messages";

    /// <summary>Stored items whose vectors came from the cache (no decoding, no encoders).</summary>
    public const string CacheHits = "freebind.ingestion.cache_hits";

    /// <summary>Messages consumed and not yet durable.</summary>
    public const string InFlight = "freebind.ingestion.in_flight";

    /// <summary>Times the assigned partitions were paused because too many messages were in flight.</summary>
    public const string Pauses = "freebind.ingestion.pauses";

    /// <summary>Duration of one write transaction (ms); tag <c>items</c> is not used, see <see cref="WriteItems"/>.</summary>
    public const string WriteDuration = "freebind.ingestion.write.duration";

    /// <summary>Items per write transaction.</summary>
    public const string WriteItems = "freebind.ingestion.write.items";

    /// <summary>Retries, tag <c>operation</c> (storage, produce, item, …).</summary>
    public const string Retries = "freebind.retries";

    /// <summary>Changes of the set of write targets taken into use.</summary>
    public const string TargetChanges = "freebind.ingestion.target_changes";

    private readonly Counter<long> _messages;
    private readonly Counter<long> _cacheHits;
    private readonly UpDownCounter<long> _inFlight;
    private readonly Counter<long> _pauses;
    private readonly Histogram<double> _writeDuration;
    private readonly Histogram<int> _writeItems;
    private readonly Counter<long> _retries;
    private readonly Counter<long> _targetChanges;

    public IngestionMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _messages = meter.CreateCounter<long>(Messages, "{message}", "Messages made durable (stored, deleted or dead-lettered)");
        _cacheHits = meter.CreateCounter<long>(CacheHits, "{item}", "Stored items served from the cache");
        _inFlight = meter.CreateUpDownCounter<long>(InFlight, "{message}", "Messages consumed and not yet durable");
        _pauses = meter.CreateCounter<long>(Pauses, "{pause}", "Partition pauses for back-pressure");
        _writeDuration = meter.CreateHistogram<double>(WriteDuration, "ms", "Duration of one write transaction");
        _writeItems = meter.CreateHistogram<int>(WriteItems, "{item}", "Items per write transaction");
        _retries = meter.CreateCounter<long>(Retries, "{retry}", "Retries by operation");
        _targetChanges = meter.CreateCounter<long>(TargetChanges, "{change}", "Changes of the write-target set");
    }

    public void Stored(bool cacheHit)
    {
        _messages.Add(1, new KeyValuePair<string, object?>("outcome", "stored"));
        if (cacheHit) _cacheHits.Add(1);
    }

    public void Deleted() => _messages.Add(1, new KeyValuePair<string, object?>("outcome", "deleted"));

    public void DeadLettered(string errorClass) =>
        _messages.Add(1, new KeyValuePair<string, object?>("outcome", "dead_lettered"), new KeyValuePair<string, object?>("error.class", errorClass));

    public void Consumed() => _inFlight.Add(1);

    public void Completed() => _inFlight.Add(-1);

    public void Paused() => _pauses.Add(1);

    public void Written(int items, double milliseconds)
    {
        _writeItems.Record(items);
        _writeDuration.Record(milliseconds);
    }

    public void Retried(string operation) => _retries.Add(1, new KeyValuePair<string, object?>("operation", operation));

    public void TargetsChanged() => _targetChanges.Add(1);
}
