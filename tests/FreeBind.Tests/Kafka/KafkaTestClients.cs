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
    public static Task<List<string>> ConsumeAsync(
        string bootstrap, string group, string topic, Func<IReadOnlyCollection<string>, bool> done, TimeSpan timeout,
        ConcurrentBag<string>? seen = null, int? unstoredLast = null, TimeSpan? drainIdle = null) =>
        Task.Factory.StartNew(() =>
        {
            var processed = new List<string>();
            using var consumer = Consumer(bootstrap, group);
            consumer.Subscribe(topic);
            var deadline = DateTime.UtcNow + timeout;
            var lastMessage = DateTime.UtcNow;
            // With drainIdle, "done" only starts the drain: a rebalance may have rewound a partition
            // to its last commit, so keep going until the stream is idle, i.e. positions are at the end.
            while (DateTime.UtcNow < deadline
                   && !(done(processed) && (drainIdle is not { } idle || DateTime.UtcNow - lastMessage > idle)))
            {
                var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (result is null || result.IsPartitionEOF)
                    continue;
                lastMessage = DateTime.UtcNow;
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
