using System.Diagnostics;
using System.Threading.Channels;
using Confluent.Kafka;
using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Pipeline;
using FreeBind.Consumers.Resilience;
using FreeBind.Consumers.Spaces;
using FreeBind.Persistence.Embeddings;
using Microsoft.Extensions.Logging;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// Makes consumed messages durable, in consume order: takes finished work in batches, writes each
/// batch into the current write targets (one set per batch), publishes its results and dead
/// letters, and only then stores its offsets.
/// </summary>
/// <remarks>
/// Failures are sorted by what they mean (<see cref="Failures"/>): an outage is retried until it
/// passes; a vanished version table re-reads the targets; a refusal by Postgres of one item's data,
/// or an unforeseen failure, is isolated by splitting the batch until the one item is found, which
/// is dead-lettered (after <see cref="IngestionOptions.UnforeseenAttempts"/> tries for the
/// unforeseen) while the rest is written. If the refused item was the last event of its key in the
/// batch, the key's previous event in the batch is written instead, as if events had been applied
/// one by one.
/// </remarks>
internal sealed partial class BatchWriter(
    ChannelReader<Work> work, IConsumer<byte[]?, byte[]?> consumer, WriteTargets writeTargets, ItemPipeline pipeline, EmbeddingStore store,
    ResultPublisher publisher, PartitionBook book, Retries retries, IngestionOptions options, IngestionMetrics metrics, ILogger logger)
{
    private sealed record Refusal(string ErrorClass, string Reason, int Attempts);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var batch = new List<(Work Work, Outcome Outcome)>(options.WriteBatch);
        // Batch k's output events and offsets complete while batch k+1 is collected and written;
        // offsets are still stored in consume order (each finish waits for the one before it).
        var finishing = Task.CompletedTask;
        while (await work.WaitToReadAsync(cancellationToken))
        {
            if (finishing.IsFaulted) await finishing;
            while (batch.Count < options.WriteBatch)
            {
                if (work.TryRead(out var next))
                {
                    batch.Add((next, await next.Outcome));
                    continue;
                }
                if (batch.Count == 0) break;
                using var linger = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                linger.CancelAfter(options.WriteLingerMs);
                try
                {
                    if (!await work.WaitToReadAsync(linger.Token)) break;
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

    /// <summary>Makes a batch durable and returns the task that publishes its results and then, after <paramref name="previous"/>, stores its offsets.</summary>
    private async Task<Task> CommitAsync(List<(Work Work, Outcome Outcome)> batch, Task previous, CancellationToken cancellationToken)
    {
        // Messages of partitions taken away from us are left to their new owner.
        var live = batch.Select(b => b.Outcome).Where(o => !book.IsRevoked(o.Message.TopicPartition)).ToList();
        var refused = new Dictionary<Outcome, Refusal>(ReferenceEqualityComparer.Instance);
        // A version's table dropped since the targets were read: read them again and redo the batch
        // (writes are idempotent), with the common backoff, so a table dropped by hand while its
        // version is still live costs a retry every few seconds until an operator acts, not a spin.
        var attempts = 0;
        var (targets, written) = await retries.StaleTarget.ExecuteAsync(async token =>
        {
            if (attempts++ > 0)
            {
                refused.Clear();
                await retries.Storage.ExecuteAsync(async t => await writeTargets.RefreshAsync(t), token);
            }
            return await WriteAsync(live, refused, token);
        }, cancellationToken);

        var deliveries = new List<Task>();
        var outcomes = new Dictionary<Outcome, Outcome>(ReferenceEqualityComparer.Instance); // as written (re-targeted upserts replace the consumed ones)
        foreach (var o in written) outcomes[o.Original] = o.Written;
        foreach (var outcome in live)
        {
            if (outcome is Outcome.Rejected r)
                deliveries.Add(publisher.DeadLetterAsync(r.Message, r.ErrorClass, r.Reason, r.Attempts, cancellationToken));
            else if (refused.TryGetValue(outcome, out var f))
                deliveries.Add(publisher.DeadLetterAsync(outcome.Message, f.ErrorClass, f.Reason, f.Attempts, cancellationToken));
            else if (outcomes.TryGetValue(outcome, out var w) && w is Outcome.Upserted u)
                deliveries.Add(publisher.PublishAsync(targets, u.Result, cancellationToken));
        }
        return FinishAsync(batch, refused, deliveries, previous);
    }

    /// <summary>
    /// Writes the batch's final event per key into the current targets, isolating refused items and
    /// falling back to a key's previous event when its last one is refused. Returns the set used and,
    /// per key, the event written (re-targeted when the set changed since it was processed).
    /// </summary>
    private async Task<(TargetSet Targets, List<(Outcome Original, Outcome Written)> Written)> WriteAsync(
        List<Outcome> live, Dictionary<Outcome, Refusal> refused, CancellationToken cancellationToken)
    {
        var targets = writeTargets.Current;
        var history = live.Where(o => o.Key is not null).GroupBy(o => o.Key!, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        var written = new Dictionary<string, (Outcome Original, Outcome Written)>(StringComparer.Ordinal);
        var round = history.Values.Select(h => h[^1]).ToList();
        while (round.Count > 0)
        {
            var ready = new List<(Outcome Original, Outcome Written)>();
            foreach (var outcome in round)
            {
                var current = await RetargetAsync(outcome, targets, cancellationToken);
                if (current is Outcome.Rejected r) refused[outcome] = new Refusal(r.ErrorClass, r.Reason, r.Attempts);
                else ready.Add((outcome, current));
            }
            // Keys are split over independent write transactions ("lanes", Ingestion:WriteLanes): Postgres
            // spends most of a write in HNSW inserts, one backend per transaction, and the lanes use the
            // other cores. A key always falls in one lane and the batch completes as a whole, so per-key order holds.
            var lanes = ready.GroupBy(o => Lane(o.Written.Key!)).Select(l => WriteIsolatingAsync(l.ToList(), cancellationToken));
            var failures = (await Task.WhenAll(lanes)).SelectMany(f => f).ToList();
            foreach (var (item, refusal) in failures) refused[item.Original] = refusal;
            foreach (var item in ready.Where(i => !refused.ContainsKey(i.Original))) written[item.Written.Key!] = item;
            // A refused last event gives way to the key's previous one, which is written in the next round.
            round = [.. round.Where(refused.ContainsKey).Select(o => Previous(history[o.Key!], o, refused)).OfType<Outcome>()];
        }
        return (targets, [.. written.Values]);
    }

    private static Outcome? Previous(List<Outcome> history, Outcome refusedOne, Dictionary<Outcome, Refusal> refused)
    {
        var index = history.FindIndex(h => ReferenceEquals(h, refusedOne));
        for (var i = index - 1; i >= 0; i--)
            if (!refused.ContainsKey(history[i])) return history[i];
        return null;
    }

    private async Task<Outcome> RetargetAsync(Outcome outcome, TargetSet targets, CancellationToken cancellationToken)
    {
        if (outcome is not Outcome.Upserted u || u.Result.Generation == targets.Generation) return outcome;
        // Processed for an older set of targets (a version was added or removed since): rare, and fused from its atoms.
        return await pipeline.RetargetAsync(u.Result, targets, cancellationToken) switch
        {
            ItemResult.Embedded e => u with { Result = e },
            ItemResult.Rejected r => new Outcome.Rejected(u.Message, r.ErrorClass, r.Reason, r.Attempts),
            _ => outcome,
        };
    }

    // Writes a lane; when Postgres refuses an item, or something unforeseen fails, halves it until
    // the item is alone, so everything else in the lane is still written.
    private async Task<List<((Outcome Original, Outcome Written) Item, Refusal Refusal)>> WriteIsolatingAsync(
        List<(Outcome Original, Outcome Written)> items, CancellationToken cancellationToken)
    {
        try
        {
            await retries.Storage.ExecuteAsync(async token => await ApplyAsync(items, token), cancellationToken);
            return [];
        }
        catch (Exception e) when (Failures.Classify(e) is FailureKind.ItemRefused or FailureKind.Unforeseen && !cancellationToken.IsCancellationRequested)
        {
            if (items.Count > 1)
            {
                var half = items.Count / 2;
                return [.. await WriteIsolatingAsync(items[..half], cancellationToken), .. await WriteIsolatingAsync(items[half..], cancellationToken)];
            }
            if (Failures.Classify(e) == FailureKind.ItemRefused)
                return [(items[0], new Refusal(ErrorClasses.Database, Failures.Describe(e), 1))];
            return [.. await RetryAloneAsync(items[0], e, cancellationToken)];
        }
    }

    private async Task<List<((Outcome, Outcome) Item, Refusal Refusal)>> RetryAloneAsync((Outcome Original, Outcome Written) item, Exception first, CancellationToken cancellationToken)
    {
        var attempts = 1;
        try
        {
            await retries.For("write", (e, attempt) => Failures.Classify(e) != FailureKind.ItemRefused && attempt + 2 < options.UnforeseenAttempts)
                .ExecuteAsync(async token =>
                {
                    attempts++;
                    await ApplyAsync([item], token);
                }, cancellationToken);
            return [];
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            var errorClass = Failures.Classify(e) == FailureKind.ItemRefused ? ErrorClasses.Database : ErrorClasses.Internal;
            LogWriteFailed(logger, item.Original.Message.TopicPartitionOffset.ToString(), attempts, Failures.Describe(first));
            return [(item, new Refusal(errorClass, Failures.Describe(e), attempts))];
        }
    }

    private async Task ApplyAsync(List<(Outcome Original, Outcome Written)> items, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var deletes = items.Select(i => i.Written).OfType<Outcome.Deleted>().Select(d => d.Event.Id).ToList();
        var upserts = items.Select(i => i.Written).OfType<Outcome.Upserted>().Select(u => u.Result.ToWrite()).ToList();
        if (deletes.Count > 0) await store.DeleteAsync(deletes, cancellationToken);
        if (upserts.Count > 0) await store.WriteAsync(upserts, cancellationToken);
        metrics.Written(items.Count, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private int Lane(string key) => (int)((uint)StableHash(key) % (uint)options.WriteLanes);

    // FNV-1a: string.GetHashCode is randomised per process, and lanes must not depend on it.
    private static int StableHash(string key)
    {
        var hash = 2166136261u;
        foreach (var c in key) hash = (hash ^ c) * 16777619u;
        return (int)hash;
    }

    private async Task FinishAsync(List<(Work Work, Outcome Outcome)> batch, Dictionary<Outcome, Refusal> refused, List<Task> deliveries, Task previous)
    {
        await Task.WhenAll(deliveries);
        await previous;
        foreach (var (w, outcome) in batch)
        {
            var tp = w.Message.TopicPartition;
            if (!book.IsRevoked(tp))
            {
                try
                {
                    // Without the leader epoch: a commit whose epoch predates a leader move is refused by the broker.
                    consumer.StoreOffset(new TopicPartitionOffset(tp, w.Message.Offset + 1));
                }
                catch (KafkaException e)
                {
                    // The partition was revoked meanwhile: its new owner replays from the last commit (writes are idempotent).
                    LogStoreFailed(logger, tp.ToString(), e.Error.Reason);
                }
                if (outcome is Outcome.Rejected r) metrics.DeadLettered(r.ErrorClass);
                else if (refused.TryGetValue(outcome, out var f)) metrics.DeadLettered(f.ErrorClass);
                else if (outcome is Outcome.Deleted) metrics.Deleted();
                else metrics.Stored(((Outcome.Upserted)outcome).Result.CacheHit);
            }
            book.Completed(tp);
        }
    }

    [LoggerMessage(EventId = 5500, Level = LogLevel.Error, Message = "Writing {Message} failed {Attempts} times ({Reason}); dead-lettering it")]
    private static partial void LogWriteFailed(ILogger logger, string message, int attempts, string reason);

    [LoggerMessage(EventId = 5501, Level = LogLevel.Warning, Message = "Could not store offset for {Partition}: {Reason}")]
    private static partial void LogStoreFailed(ILogger logger, string partition, string reason);
}
