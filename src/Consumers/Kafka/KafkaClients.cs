using Confluent.Kafka;
using FreeBind.Consumers.Kafka.Embedded;
using FreeBind.Consumers.Pipeline.Content;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Kafka;

/// <summary>
/// Builds the worker's Kafka clients: the worker's own settings first (manual offset store,
/// cooperative-sticky assignment, idempotent producer sized for dead-letter copies), then
/// <c>Kafka:Client:*</c>, then <c>Kafka:Consumer:*</c> / <c>Kafka:Producer:*</c>. With
/// <c>Kafka:Embedded=true</c> it starts librdkafka's in-process mock cluster and creates the topics.
/// Keys and values are raw bytes, so a dead-letter copy is the original message, byte for byte.
/// </summary>
public sealed partial class KafkaClients : IDisposable
{
    private readonly KafkaOptions _options;
    private readonly ContentOptions _content;
    private readonly ILogger<KafkaClients> _logger;
    private readonly MockKafkaCluster? _embedded;

    public KafkaClients(IOptions<KafkaOptions> options, IOptions<ContentOptions> content, ILogger<KafkaClients> logger)
    {
        _options = options.Value;
        _content = content.Value;
        _logger = logger;
        if (_options.Embedded)
        {
            _embedded = MockKafkaCluster.Start(brokers: 1, groupInitialRebalanceDelay: TimeSpan.FromMilliseconds(500));
            foreach (var topic in new[] { _options.Topic, _options.OutputTopic, _options.DeadLetterTopic })
                _embedded.CreateTopic(topic, _options.EmbeddedPartitions);
            LogEmbedded(logger, _embedded.BootstrapServers);
        }
    }

    public string BootstrapServers => _embedded?.BootstrapServers ?? _options.BootstrapServers;

    /// <summary>The consumer's settings, as librdkafka will receive them.</summary>
    public ConsumerConfig ConsumerConfig()
    {
        var config = new ConsumerConfig
        {
            // Stored offsets are committed in the background and on close/rebalance; the worker
            // stores an offset only once its message is durable (rows committed or dead-lettered).
            EnableAutoCommit = true,
            EnableAutoOffsetStore = false,
            AutoCommitIntervalMs = 1000,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
            SessionTimeoutMs = 45_000,
            MaxPollIntervalMs = 300_000,
        };
        KafkaSettings.Apply(config, _options.Client, "Kafka:Client");
        KafkaSettings.Apply(config, _options.Consumer, "Kafka:Consumer");
        config.BootstrapServers = BootstrapServers;
        config.GroupId = _options.GroupId;
        return config;
    }

    /// <summary>The producer's settings, as librdkafka will receive them.</summary>
    public ProducerConfig ProducerConfig()
    {
        var config = new ProducerConfig
        {
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 5,
            // Room for a dead-letter copy of the largest event the content policy accepts; a copy
            // the broker still refuses goes without its value (the headers say so).
            MessageMaxBytes = (int)Math.Clamp(_content.MaxEventBytes + 64 * 1024, 1_000_000, 1_000_000_000),
        };
        KafkaSettings.Apply(config, _options.Client, "Kafka:Client");
        KafkaSettings.Apply(config, _options.Producer, "Kafka:Producer");
        config.BootstrapServers = BootstrapServers;
        return config;
    }

    public IConsumer<byte[]?, byte[]?> CreateConsumer(
        Action<IConsumer<byte[]?, byte[]?>, List<TopicPartition>> assigned,
        Action<IConsumer<byte[]?, byte[]?>, List<TopicPartitionOffset>> revoked,
        Action<IConsumer<byte[]?, byte[]?>, List<TopicPartitionOffset>> lost,
        Action<Error> fatal) =>
        new ConsumerBuilder<byte[]?, byte[]?>(ConsumerConfig())
            .SetPartitionsAssignedHandler(assigned)
            .SetPartitionsRevokedHandler(revoked)
            .SetPartitionsLostHandler(lost)
            .SetErrorHandler((_, e) => OnError(e, fatal))
            .SetLogHandler((_, m) => OnLog(m))
            .Build();

    public IProducer<byte[]?, byte[]?> CreateProducer(Action<Error> fatal) =>
        new ProducerBuilder<byte[]?, byte[]?>(ProducerConfig())
            .SetErrorHandler((_, e) => OnError(e, fatal))
            .SetLogHandler((_, m) => OnLog(m))
            .Build();

    private void OnError(Error error, Action<Error> fatal)
    {
        LogError(_logger, error.IsFatal, error.Reason);
        if (error.IsFatal) fatal(error);
    }

    // librdkafka's own log lines, through our logging instead of its default stderr writer;
    // librdkafka never prints secret values. Its error lines also arrive as error events (logged
    // above), so they are kept at debug level to say each thing once.
    private void OnLog(LogMessage message)
    {
        var level = message.Level switch
        {
            SyslogLevel.Warning => LogLevel.Warning,
            SyslogLevel.Notice => LogLevel.Information,
            _ => LogLevel.Debug,
        };
        LogClient(_logger, level, message.Facility, message.Message);
    }

    public void Dispose() => _embedded?.Dispose();

    [LoggerMessage(EventId = 5200, Level = LogLevel.Information, Message = "Embedded Kafka (librdkafka mock cluster) at {Bootstrap}")]
    private static partial void LogEmbedded(ILogger logger, string bootstrap);

    [LoggerMessage(EventId = 5201, Level = LogLevel.Warning, Message = "Kafka client error (fatal: {Fatal}): {Reason}")]
    private static partial void LogError(ILogger logger, bool fatal, string reason);

    [LoggerMessage(EventId = 5202, Message = "librdkafka {Facility}: {Message}")]
    private static partial void LogClient(ILogger logger, LogLevel level, string facility, string message);
}
