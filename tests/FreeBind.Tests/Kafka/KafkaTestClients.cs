using System.Collections.Concurrent;
using Confluent.Kafka;

namespace FreeBind.Tests.Kafka;

/// <summary>Producer and consumer settings the tests use against the mock cluster.</summary>
internal static class KafkaTestClients
{
    public static IProducer<string, string> Producer(string bootstrap) =>
        new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = bootstrap,
            EnableIdempotence = true, // retries after faults must not duplicate messages in the log
            Acks = Acks.All,
            MessageTimeoutMs = 60_000,
            LingerMs = 5,
        }).Build();

    /// <summary>
    /// A group member like the worker's: offsets stored only by the application after its work is
    /// durable, committed from the store; short session timeout so faults resolve in seconds.
    /// </summary>
    public static IConsumer<string, string> Consumer(string bootstrap, string group) =>
        new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrap,
            GroupId = group,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoOffsetStore = false,
            EnableAutoCommit = true,
            AutoCommitIntervalMs = 500,
            SessionTimeoutMs = 6000,
            HeartbeatIntervalMs = 1000,
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
            TopicMetadataRefreshIntervalMs = 2000,
        }).SetErrorHandler((_, e) =>
        {
            if (e.IsFatal)
                throw new KafkaException(e);
        }).Build();

    /// <summary>Produces <paramref name="count"/> messages keyed <c>m{i}</c> and waits for every delivery.</summary>
    public static async Task ProduceAsync(IProducer<string, string> producer, string topic, int from, int count, TimeSpan? pace = null)
    {
        var deliveries = new List<Task<DeliveryResult<string, string>>>();
        for (var i = from; i < from + count; i++)
        {
            deliveries.Add(producer.ProduceAsync(topic, new Message<string, string> { Key = $"m{i:D5}", Value = i.ToString() }));
            if (pace is { } p && i % 20 == 0)
                await Task.Delay(p);
        }
        await Task.WhenAll(deliveries);
    }

    /// <summary>
    /// The blocking consume loop on its own thread: each message is "processed" (recorded), then its
    /// offset stored. Runs until <paramref name="done"/> or the timeout, then commits and closes.
    /// </summary>
    /// <param name="drainToEnd">
    /// "Done" only starts a drain, which lasts until every partition of the topic is assigned and
    /// consumed to its end: a rebalance may have rewound a partition to its last commit (and cleared
    /// its stored offset), and what is re-read there must be stored again before the final commit.
    /// An idle spell is no sign of that: after injected faults a re-fetch can pause for seconds.
    /// </param>
    public static Task<List<string>> ConsumeAsync(
        string bootstrap, string group, string topic, Func<IReadOnlyCollection<string>, bool> done, TimeSpan timeout,
        ConcurrentBag<string>? seen = null, int? unstoredLast = null, int? drainToEnd = null) =>
        Task.Factory.StartNew(() =>
        {
            var processed = new List<string>();
            using var consumer = Consumer(bootstrap, group);
            consumer.Subscribe(topic);
            var deadline = DateTime.UtcNow + timeout;
            var nextCheck = DateTime.MinValue;
            var atEnd = false;
            while (DateTime.UtcNow < deadline && !(done(processed) && (drainToEnd is null || atEnd)))
            {
                if (drainToEnd is { } count && DateTime.UtcNow >= nextCheck && done(processed))
                {
                    atEnd = AtEnd(consumer, topic, count);
                    nextCheck = DateTime.UtcNow.AddMilliseconds(500);
                }
                var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (result is null || result.IsPartitionEOF)
                    continue;
                atEnd = false;
                if (unstoredLast is { } n && processed.Count == n)
                    break; // "crash" with this message in flight: it was consumed but never stored
                processed.Add(result.Message.Key);
                seen?.Add(result.Message.Key);
                // Stored without the record's leader epoch: the mock broker rejects a commit whose
                // epoch predates a leader move (FENCED_LEADER_EPOCH), so StoreOffset(result) would
                // leave the final commit failing forever after SetPartitionLeader.
                consumer.StoreOffset(new TopicPartitionOffset(result.TopicPartition, result.Offset + 1));
            }
            CommitWithRetry(consumer);
            consumer.Close();
            return processed;
        }, TaskCreationOptions.LongRunning);

    // Every partition assigned to this member and its position at the high watermark (asked of the
    // broker: a cached one may predate the last messages). A partition that returned nothing since it
    // was assigned has no position yet: where it resumes is its committed offset. A failed query is "not yet".
    private static bool AtEnd(IConsumer<string, string> consumer, string topic, int partitions)
    {
        if (consumer.Assignment.Count(tp => tp.Topic == topic) < partitions) return false;
        var timeout = TimeSpan.FromSeconds(5);
        try
        {
            return consumer.Assignment.All(tp =>
            {
                var position = consumer.Position(tp);
                if (position == Offset.Unset) position = consumer.Committed([tp], timeout)[0].Offset;
                return position.Value >= consumer.QueryWatermarkOffsets(tp, timeout).High.Value;
            });
        }
        catch (KafkaException)
        {
            return false;
        }
    }

    // A commit may hit an injected or transient error; retry like the worker does, never drop it.
    private static void CommitWithRetry(IConsumer<string, string> consumer)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                consumer.Commit();
                return;
            }
            catch (KafkaException ex) when (ex.Error.Code == ErrorCode.Local_NoOffset)
            {
                return; // nothing stored since the last commit
            }
            catch (KafkaException) when (attempt < 10)
            {
                Thread.Sleep(200 * attempt);
            }
        }
    }
}
