using System.Diagnostics.Metrics;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// Reads one host's <see cref="IngestionMetrics"/> as they are recorded (a <see cref="MeterListener"/>
/// limited to that host's meter factory): for <c>freebind demo</c>, tests and benchmarks, which
/// need to know how far a worker got without counters of its own.
/// </summary>
public sealed class IngestionMetricsListener : IDisposable
{
    private readonly MeterListener _listener = new();
    private long _stored;
    private long _deleted;
    private long _deadLettered;
    private long _cacheHits;
    private long _pauses;
    private long _inFlight;
    private long _peakInFlight;
    private long _writes;
    private long _writtenItems;
    private long _retries;

    /// <param name="meterFactory">The host's factory (<c>host.Services.GetRequiredService&lt;IMeterFactory&gt;()</c>).</param>
    public IngestionMetricsListener(IMeterFactory meterFactory)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == IngestionMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, meterFactory))
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>(OnLong);
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, state) => OnLong(instrument, value, tags, state));
        _listener.SetMeasurementEventCallback<double>((_, _, _, _) => { });
        _listener.Start();
    }

    /// <summary>Messages made durable: stored, deleted or dead-lettered.</summary>
    public long Completed => Interlocked.Read(ref _stored) + Interlocked.Read(ref _deleted) + Interlocked.Read(ref _deadLettered);

    public long Stored => Interlocked.Read(ref _stored);
    public long Deleted => Interlocked.Read(ref _deleted);
    public long DeadLettered => Interlocked.Read(ref _deadLettered);
    public long CacheHits => Interlocked.Read(ref _cacheHits);
    public long Pauses => Interlocked.Read(ref _pauses);
    public long InFlight => Interlocked.Read(ref _inFlight);

    /// <summary>Most messages in flight at once since the listener started.</summary>
    public long PeakInFlight => Interlocked.Read(ref _peakInFlight);

    /// <summary>Write transactions and the items they carried.</summary>
    public (long Writes, long Items) Writes => (Interlocked.Read(ref _writes), Interlocked.Read(ref _writtenItems));

    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>Waits until <see cref="Completed"/> reaches <paramref name="count"/>.</summary>
    /// <exception cref="TimeoutException">It did not within <paramref name="timeout"/>.</exception>
    public async Task WaitForCompletedAsync(long count, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Completed < count)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"the worker made {Completed} of {count} messages durable in {timeout.TotalSeconds:F0} s ({InFlight} in flight)");
            await Task.Delay(5, cancellationToken);
        }
    }

    private void OnLong(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        switch (instrument.Name)
        {
            case IngestionMetrics.Messages:
                foreach (var tag in tags)
                {
                    if (tag.Key != "outcome") continue;
                    if (tag.Value is "stored") Interlocked.Add(ref _stored, value);
                    else if (tag.Value is "deleted") Interlocked.Add(ref _deleted, value);
                    else Interlocked.Add(ref _deadLettered, value);
                }
                break;
            case IngestionMetrics.CacheHits: Interlocked.Add(ref _cacheHits, value); break;
            case IngestionMetrics.Pauses: Interlocked.Add(ref _pauses, value); break;
            case IngestionMetrics.Retries: Interlocked.Add(ref _retries, value); break;
            case IngestionMetrics.WriteItems:
                Interlocked.Increment(ref _writes);
                Interlocked.Add(ref _writtenItems, value);
                break;
            case IngestionMetrics.InFlight:
                var now = Interlocked.Add(ref _inFlight, value);
                for (var peak = Interlocked.Read(ref _peakInFlight); now > peak; peak = Interlocked.Read(ref _peakInFlight))
                    if (Interlocked.CompareExchange(ref _peakInFlight, now, peak) == peak) break;
                break;
        }
    }

    public void Dispose() => _listener.Dispose();
}
