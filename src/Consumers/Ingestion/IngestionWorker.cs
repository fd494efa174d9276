using System.Collections.Concurrent;

using System.Text.Json;
using System.Threading.Channels;
using Confluent.Kafka;
using FreeBind.Encoding;
using FreeBind.Persistence.Embeddings;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// The main job (`freebind run`): a Kafka consumer group member. The blocking consume loop runs on
/// its own thread and starts each message's processing at once (they meet in the encoders'
/// micro-batchers); a writer takes finished messages in consume order, writes them to Postgres in
/// one transaction per batch, publishes tags and dead letters, and only then stores the offsets.
/// When too many messages are in flight, the assigned partitions are paused (bounded memory).
/// </summary>
public sealed partial class IngestionWorker(
    IngestionOptions options, KafkaConnection kafka, SpaceBootstrap spaces, ItemProcessor processor, EmbeddingStore store,
    ILogger<IngestionWorker> logger) : BackgroundService
{
    private sealed record Work(ConsumeResult<string?, byte[]> Message, Task<Outcome> Outcome);

    private readonly Channel<Work> _work = Channel.CreateUnbounded<Work>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly ConcurrentDictionary<TopicPartition, int> _pendingPerPartition = new();
    private readonly ConcurrentDictionary<TopicPartition, bool> _revoked = new();
    private int _inFlight;
    private long _written;
    private long _deadLettered;
    private long _cacheHits;
    private int _pauses;
    private int _peakInFlight;
    private IConsumer<string?, byte[]>? _consumer;
    private IProducer<string?, byte[]>? _producer;

    /// <summary>Messages made durable (rows written, dead-lettered or deleted) since start.</summary>
    public long Completed => Interlocked.Read(ref _written) + Interlocked.Read(ref _deadLettered);

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>How often the partitions were paused because too many messages were in flight.</summary>
    public int Pauses => Volatile.Read(ref _pauses);

    /// <summary>Most messages in flight at once (bounded by Kafka:MaxInFlight).</summary>
    public int PeakInFlight => Volatile.Read(ref _peakInFlight);

    /// <summary>Items whose vector came from the cache (no decoding, no encoders).</summary>
    public long CacheHits => Interlocked.Read(ref _cacheHits);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var space = await spaces.GetAsync(stoppingToken);
        _producer = kafka.CreateProducer();
        _consumer = kafka.CreateConsumer(OnAssigned, OnRevoked, OnLost);
        _consumer.Subscribe(options.Topic);
        LogStarted(logger, options.Topic, options.GroupId, space.Definition.Name, space.Definition.ShortVersion);

        using var stopProcessing = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        using var stopConsuming = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var writer = Task.Run(() => WriteLoopAsync(stopProcessing.Token), CancellationToken.None);
        var consume = Task.Factory.StartNew(() => ConsumeLoop(space, stopProcessing.Token, stopConsuming.Token), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            // A writer that fails for a reason other than an outage (those it retries) stops the
            // worker: better a restart by the orchestrator than a member that consumes and never commits.
            if (await Task.WhenAny(consume, writer) == writer && writer.IsFaulted)
            {
                LogWriterFailed(logger, writer.Exception!.GetBaseException());
                await stopConsuming.CancelAsync();
            }
            await consume;
        }
        finally
        {
            // Graceful stop: no new messages; finish what is in flight, store its offsets, then leave the group.
            _work.Writer.TryComplete();
            var drained = await Task.WhenAny(writer, Task.Delay(TimeSpan.FromSeconds(30), CancellationToken.None)) == writer;
            if (!drained) await stopProcessing.CancelAsync();
            try
            {
                await writer;
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                _consumer.Close();
                _consumer.Dispose();
                _producer.Flush(TimeSpan.FromSeconds(10));
                _producer.Dispose();
                LogStopped(logger, Completed, drained);
            }
        }
    }

    private void ConsumeLoop(ActiveSpace space, CancellationToken processing, CancellationToken stopping)
    {
        var consumer = _consumer!;
        var paused = false;
        while (!stopping.IsCancellationRequested)
        {
            ConsumeResult<string?, byte[]>? result;
            try
            {
                // While paused nothing arrives; poll briefly so the partitions resume as soon as the writer catches up.
                result = consumer.Consume(TimeSpan.FromMilliseconds(paused ? 5 : 100));
            }
            catch (ConsumeException e) when (!e.Error.IsFatal)
            {
                LogConsumeError(logger, e.Error.Reason);
                continue;
            }
            if (result is { IsPartitionEOF: false, Message: not null })
            {
                _pendingPerPartition.AddOrUpdate(result.TopicPartition, 1, (_, n) => n + 1);
                var now = Interlocked.Increment(ref _inFlight);
                if (now > _peakInFlight) Volatile.Write(ref _peakInFlight, now);
                _work.Writer.TryWrite(new Work(result, Task.Run(() => processor.ProcessAsync(space, result, processing), processing)));
            }
            var inFlight = Volatile.Read(ref _inFlight);
            if (!paused && inFlight >= options.MaxInFlight)
            {
                consumer.Pause(consumer.Assignment);
                paused = true;
                Interlocked.Increment(ref _pauses);
                LogPaused(logger, inFlight);
            }
            else if (paused && inFlight <= options.ResumeInFlight)
            {
                consumer.Resume(consumer.Assignment);
                paused = false;
                LogResumed(logger, inFlight);
            }
        }
    }

    private async Task WriteLoopAsync(CancellationToken cancellationToken)
    {
        var reader = _work.Reader;
        var batch = new List<(Work Work, Outcome Outcome)>(options.WriteBatch);
        // Batch k's output events and offsets complete while batch k+1 is collected and written;
        // offsets are still stored in consume order (each finish waits for the one before it).
        var finishing = Task.CompletedTask;
        while (await reader.WaitToReadAsync(cancellationToken))
        {
            if (finishing.IsFaulted) await finishing;
            while (batch.Count < options.WriteBatch)
            {
                if (reader.TryRead(out var next))
                {
                    batch.Add((next, await next.Outcome));
                    continue;
                }
                if (batch.Count == 0) break;
                using var linger = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                linger.CancelAfter(options.WriteLingerMs);
                try
                {
                    if (!await reader.WaitToReadAsync(linger.Token)) break;
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    break;
                }
            }
            if (batch.Count == 0) continue;
            finishing = await CommitAsync(batch, finishing, cancellationToken);
            batch = new List<(Work Work, Outcome Outcome)>(options.WriteBatch);
        }
        await finishing;
    }

    /// <summary>
    /// Makes a batch durable (retrying infrastructure failures until they pass) and returns the task
    /// that publishes its results and dead letters and then, after <paramref name="previous"/>, stores its offsets.
    /// </summary>
    private async Task<Task> CommitAsync(List<(Work Work, Outcome Outcome)> batch, Task previous, CancellationToken cancellationToken)
    {
        // Messages of partitions taken away from us are left to their new owner.
        var live = batch.Where(b => !_revoked.ContainsKey(b.Work.Message.TopicPartition)).Select(b => b.Outcome).ToList();
        var space = await spaces.GetAsync(cancellationToken);

        // Per key, only the last operation of the batch matters (order within a key is consume order).
        var finalPerKey = new Dictionary<string, Outcome>(StringComparer.Ordinal);
        foreach (var outcome in live)
        {
            if (outcome is Outcome.Upserted u) finalPerKey[u.Event.Id] = u;
            else if (outcome is Outcome.Deleted d) finalPerKey[d.Event.Id] = d;
        }
        // Keys are split over independent write transactions ("lanes", Kafka:WriteLanes): Postgres
        // spends most of a write in HNSW inserts, one backend per transaction, and the lanes use the
        // other cores. A key always falls in the same lane and the batch completes as a whole, so
        // per-key order holds.
        var lanes = finalPerKey.Values.GroupBy(o => Lane(o is Outcome.Upserted u ? u.Event.Id : ((Outcome.Deleted)o).Event.Id));
        await Task.WhenAll(lanes.Select(lane =>
        {
            var upserts = lane.OfType<Outcome.Upserted>().Select(u => u.Item).ToList();
            var deletes = lane.OfType<Outcome.Deleted>().Select(d => d.Event.Id).ToList();
            return RetryAsync(async () =>
            {
                if (deletes.Count > 0) await store.DeleteAsync(deletes, cancellationToken);
                if (upserts.Count > 0) await store.WriteBatchAsync(space.Version, upserts, cancellationToken);
            }, cancellationToken);
        }));

        var deliveries = new List<Task>();
        foreach (var outcome in live)
        {
            if (outcome is Outcome.Poisoned p) deliveries.Add(DeadLetterAsync(p, cancellationToken));
            else if (outcome is Outcome.Upserted u && finalPerKey[u.Event.Id] == u) deliveries.Add(PublishAsync(space, u, cancellationToken));
        }
        return FinishAsync(batch, deliveries, previous);
    }

    private int Lane(string key) => (int)((uint)StableHash(key) % (uint)options.WriteLanes);

    // FNV-1a: string.GetHashCode is randomised per process, and lanes must not depend on it.
    private static int StableHash(string key)
    {
        var hash = 2166136261u;
        foreach (var c in key) hash = (hash ^ c) * 16777619u;
        return (int)hash;
    }

    private async Task FinishAsync(List<(Work Work, Outcome Outcome)> batch, List<Task> deliveries, Task previous)
    {
        await Task.WhenAll(deliveries);
        await previous;
        foreach (var (work, outcome) in batch)
        {
            var tp = work.Message.TopicPartition;
            if (!_revoked.ContainsKey(tp))
            {
                try
                {
                    _consumer!.StoreOffset(new TopicPartitionOffset(tp, work.Message.Offset + 1));
                }
                catch (KafkaException e)
                {
                    // The partition was revoked meanwhile: its new owner replays from the last commit (writes are idempotent).
                    LogStoreFailed(logger, tp.ToString(), e.Error.Reason);
                }
            }
            if (outcome is Outcome.Poisoned) Interlocked.Increment(ref _deadLettered);
            else Interlocked.Increment(ref _written);
            if (outcome is Outcome.Upserted { CacheHit: true }) Interlocked.Increment(ref _cacheHits);
            _pendingPerPartition.AddOrUpdate(tp, 0, (_, n) => n - 1);
            Interlocked.Decrement(ref _inFlight);
        }
    }

    private async Task RetryAsync(Func<Task> write, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await write();
                if (attempt > 1) LogRecovered(logger, attempt);
                return;
            }
            catch (Exception e) when (Transient.IsInfrastructure(e) && !cancellationToken.IsCancellationRequested)
            {
                LogWriteRetry(logger, attempt, e.Message);
                await Task.Delay(Transient.Backoff(attempt), cancellationToken);
            }
        }
    }

    private async Task DeadLetterAsync(Outcome.Poisoned p, CancellationToken cancellationToken)
    {
        var m = p.Message;
        static byte[] Utf8(string value) => System.Text.Encoding.UTF8.GetBytes(value);
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var headers = new Headers();
        if (m.Message.Headers is { } original)
            foreach (var h in original) headers.Add(h.Key, h.GetValueBytes());
        headers.Add("freebind.error.class", Utf8(p.ErrorClass));
        headers.Add("freebind.error.message", Utf8(p.Reason.Length > 4000 ? p.Reason[..4000] : p.Reason));
        headers.Add("freebind.source.topic", Utf8(m.Topic));
        headers.Add("freebind.source.partition", Utf8(m.Partition.Value.ToString(inv)));
        headers.Add("freebind.source.offset", Utf8(m.Offset.Value.ToString(inv)));
        headers.Add("freebind.attempts", Utf8(p.Attempts.ToString(inv)));
        headers.Add("freebind.failed_at", Utf8(DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", inv)));
        LogDeadLetter(logger, m.TopicPartitionOffset.ToString(), p.ErrorClass, p.Reason);
        await ProduceAsync(options.DeadLetterTopic, new Message<string?, byte[]> { Key = m.Message.Key, Value = m.Message.Value, Headers = headers }, cancellationToken);
    }

    private Task PublishAsync(ActiveSpace space, Outcome.Upserted u, CancellationToken cancellationToken)
    {
        var value = JsonSerializer.SerializeToUtf8Bytes(new
        {
            schema = MediaEvent.SchemaVersion,
            id = u.Event.Id,
            tenant = u.Event.Tenant,
            modality = u.Event.Modality.ToName(),
            space = space.Definition.Name,
            space_version = space.Definition.Version,
            sha256 = u.Item.Media.Sha256,
            cached = u.CacheHit,
            tags = u.Item.Tags.Select(t => new { label = t.Label, score = t.Score, vocabulary = t.VocabularyId }),
        });
        var headers = new Headers { { "schema", "freebind.embedded.v1"u8.ToArray() } };
        return ProduceAsync(options.OutputTopic, new Message<string?, byte[]> { Key = u.Event.Id, Value = value, Headers = headers }, cancellationToken);
    }

    private async Task ProduceAsync(string topic, Message<string?, byte[]> message, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await _producer!.ProduceAsync(topic, message, cancellationToken);
                return;
            }
            catch (ProduceException<string?, byte[]> e) when (!e.Error.IsFatal && !cancellationToken.IsCancellationRequested)
            {
                LogProduceRetry(logger, topic, attempt, e.Error.Reason);
                await Task.Delay(Transient.Backoff(attempt), cancellationToken);
            }
        }
    }

    // Cooperative rebalance: before a partition goes, let the writer finish what was consumed from it,
    // so its new owner never races an older write of ours for the same key.
    private void OnRevoked(IConsumer<string?, byte[]> consumer, List<TopicPartitionOffset> partitions)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        foreach (var tpo in partitions)
        {
            while (_pendingPerPartition.GetValueOrDefault(tpo.TopicPartition) > 0 && DateTime.UtcNow < deadline)
                Thread.Sleep(20);
            _revoked[tpo.TopicPartition] = true;
        }
        LogRevoked(logger, string.Join(", ", partitions.Select(p => p.Partition.Value)));
    }

    private void OnLost(IConsumer<string?, byte[]> consumer, List<TopicPartitionOffset> partitions)
    {
        foreach (var tpo in partitions) _revoked[tpo.TopicPartition] = true;
        LogLost(logger, string.Join(", ", partitions.Select(p => p.Partition.Value)));
    }

    // A partition we own again is ours to store offsets for.
    private void OnAssigned(IConsumer<string?, byte[]> consumer, List<TopicPartition> partitions)
    {
        foreach (var tp in partitions) _revoked.TryRemove(tp, out _);
        LogAssigned(logger, string.Join(", ", partitions.Select(p => p.Partition.Value)));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Consuming {Topic} as group {Group} into space {Space} {Version}")]
    private static partial void LogStarted(ILogger logger, string topic, string group, string space, string version);

    [LoggerMessage(Level = LogLevel.Critical, Message = "The writer failed; stopping the worker")]
    private static partial void LogWriterFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopped after {Completed} messages (drained: {Drained})")]
    private static partial void LogStopped(ILogger logger, long completed, bool drained);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Consume error: {Reason}")]
    private static partial void LogConsumeError(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Paused partitions: {InFlight} messages in flight")]
    private static partial void LogPaused(ILogger logger, int inFlight);

    [LoggerMessage(Level = LogLevel.Information, Message = "Resumed partitions: {InFlight} messages in flight")]
    private static partial void LogResumed(ILogger logger, int inFlight);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Write failed (attempt {Attempt}), retrying: {Reason}")]
    private static partial void LogWriteRetry(ILogger logger, int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Write succeeded after {Attempt} attempts")]
    private static partial void LogRecovered(ILogger logger, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dead-lettering {Message}: {ErrorClass}: {Reason}")]
    private static partial void LogDeadLetter(ILogger logger, string message, string errorClass, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Produce to {Topic} failed (attempt {Attempt}), retrying: {Reason}")]
    private static partial void LogProduceRetry(ILogger logger, string topic, int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not store offset for {Partition}: {Reason}")]
    private static partial void LogStoreFailed(ILogger logger, string partition, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Partitions assigned: {Partitions}")]
    private static partial void LogAssigned(ILogger logger, string partitions);

    [LoggerMessage(Level = LogLevel.Information, Message = "Partitions revoked: {Partitions}")]
    private static partial void LogRevoked(ILogger logger, string partitions);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Partitions lost: {Partitions}")]
    private static partial void LogLost(ILogger logger, string partitions);
}
