using Confluent.Kafka;
using FreeBind.Consumers.Kafka;
using Microsoft.Extensions.Logging;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// Builds the Kafka clients from <see cref="IngestionOptions"/>. With <c>Kafka:Embedded=true</c> it
/// starts librdkafka's in-process mock cluster (real Kafka protocol) and creates the topics.
/// </summary>
public sealed partial class KafkaConnection : IDisposable
{
    private readonly IngestionOptions _options;
    private readonly ILogger<KafkaConnection> _logger;
    private readonly MockKafkaCluster? _embedded;

    public KafkaConnection(IngestionOptions options, ILogger<KafkaConnection> logger)
    {
        _options = options;
        _logger = logger;
        if (options.Embedded)
        {
            _embedded = MockKafkaCluster.Start(brokers: 1, groupInitialRebalanceDelay: TimeSpan.FromMilliseconds(500));
            foreach (var topic in new[] { options.Topic, options.OutputTopic, options.DeadLetterTopic })
                _embedded.CreateTopic(topic, options.EmbeddedPartitions);
            LogEmbedded(logger, _embedded.BootstrapServers);
        }
    }

    public string BootstrapServers => _embedded?.BootstrapServers ?? _options.BootstrapServers;

    public IConsumer<string?, byte[]> CreateConsumer(
        Action<IConsumer<string?, byte[]>, List<TopicPartition>> assigned,
        Action<IConsumer<string?, byte[]>, List<TopicPartitionOffset>> revoked,
        Action<IConsumer<string?, byte[]>, List<TopicPartitionOffset>> lost)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = BootstrapServers,
            GroupId = _options.GroupId,
            // Offsets are stored by hand once a message is durable; librdkafka commits stored offsets
            // in the background and on close/rebalance.
            EnableAutoCommit = true,
            EnableAutoOffsetStore = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
            SessionTimeoutMs = _options.SessionTimeoutMs,
            HeartbeatIntervalMs = Math.Max(100, _options.SessionTimeoutMs / 6),
            MaxPollIntervalMs = _options.MaxPollIntervalMs,
            AutoCommitIntervalMs = 1000,
        };
        return new ConsumerBuilder<string?, byte[]>(config)
            .SetPartitionsAssignedHandler(assigned)
            .SetPartitionsRevokedHandler(revoked)
            .SetPartitionsLostHandler(lost)
            .SetErrorHandler((_, e) => LogError(_logger, e.IsFatal, e.Reason))
            .Build();
    }

    public IProducer<string?, byte[]> CreateProducer() =>
        new ProducerBuilder<string?, byte[]>(new ProducerConfig
        {
            BootstrapServers = BootstrapServers,
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 5,
        }).SetErrorHandler((_, e) => LogError(_logger, e.IsFatal, e.Reason)).Build();

    public void Dispose() => _embedded?.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedded Kafka (librdkafka mock cluster) at {Bootstrap}")]
    private static partial void LogEmbedded(ILogger logger, string bootstrap);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kafka client error (fatal: {Fatal}): {Reason}")]
    private static partial void LogError(ILogger logger, bool fatal, string reason);
}
