using Confluent.Kafka;
using FreeBind.Consumers.Kafka.Embedded;
using FreeBind.Consumers.Pipeline.Content;
using FreeBind.Consumers.Resilience;
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
    /// <exception cref="ArgumentException">A pass-through setting is unknown, managed by the worker, or too small for the content caps.</exception>
    public ConsumerConfig ConsumerConfig()
    {
        var config = ConsumerConfig(_options, _content);
        config.BootstrapServers = BootstrapServers;
        return config;
    }

    /// <summary>The consumer's settings from the worker's options (no bootstrap servers).</summary>
    public static ConsumerConfig ConsumerConfig(KafkaOptions options, ContentOptions content)
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
        KafkaSettings.Apply(config, options.Client, "Kafka:Client");
        KafkaSettings.Apply(config, options.Consumer, "Kafka:Consumer");
        FitFetchSizes(config, content);
        config.GroupId = options.GroupId;
        return config;
    }

    // librdkafka's defaults.
    private const int DefaultFetchMaxBytes = 52_428_800;
    private const int DefaultReceiveMessageMaxBytes = 100_000_000;
    private const int DefaultMessageMaxBytes = 1_000_000;

    // The consumer must fetch the largest event the content policy accepts, and an oversize one
    // must still be fetched to be dead-lettered: a fetch response above receive.message.max.bytes
    // is refused by librdkafka and fetched again for ever, so the partition stalls. Content's caps
    // allow events of ~360 MB (MaxInlineBytes up to 256 MiB, in base64) against a 100 MB default.
    // Sizes the user set are kept; what cannot work is refused at start, in one sentence.
    private static void FitFetchSizes(ConsumerConfig config, ContentOptions content)
    {
        var largest = content.MaxEventBytes;
        // librdkafka requires fetch.max.bytes >= message.max.bytes and receive.message.max.bytes >= fetch.max.bytes + 512.
        var messageMax = (long)(config.MessageMaxBytes ?? DefaultMessageMaxBytes);
        if (config.FetchMaxBytes is null)
        {
            var fetch = Math.Max(Math.Max(largest, messageMax), DefaultFetchMaxBytes);
            if (config.ReceiveMessageMaxBytes is { } receive) fetch = Math.Min(fetch, receive - 512L);
            config.FetchMaxBytes = (int)Math.Clamp(fetch, 0, int.MaxValue - 512);
        }
        config.ReceiveMessageMaxBytes ??= (int)Math.Max(DefaultReceiveMessageMaxBytes, config.FetchMaxBytes.Value + 512L);
        var needed = Math.Max(largest, messageMax);
        if (config.FetchMaxBytes < needed || config.ReceiveMessageMaxBytes < config.FetchMaxBytes + 512L)
            throw new ArgumentException(
                $"the Kafka consumer's fetch sizes (fetch.max.bytes {config.FetchMaxBytes}, receive.message.max.bytes {config.ReceiveMessageMaxBytes}) cannot carry " +
                $"the largest event Content:MaxInlineBytes and Content:MaxMetadataBytes accept ({largest} bytes, and message.max.bytes {messageMax}); " +
                "raise them in Kafka:Consumer (receive.message.max.bytes at least fetch.max.bytes + 512), or leave them unset so the worker sizes them");
    }

    /// <summary>The producer's settings, as librdkafka will receive them.</summary>
    /// <exception cref="ArgumentException">A pass-through setting is unknown or managed by the worker.</exception>
    public ProducerConfig ProducerConfig()
    {
        var config = ProducerConfig(_options, _content);
        config.BootstrapServers = BootstrapServers;
        return config;
    }

    /// <summary>The producer's settings from the worker's options (no bootstrap servers).</summary>
    public static ProducerConfig ProducerConfig(KafkaOptions options, ContentOptions content)
    {
        var config = new ProducerConfig
        {
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 5,
            // Room for a dead-letter copy of the largest event the content policy accepts; a copy
            // the broker still refuses goes without its value (the headers say so).
            MessageMaxBytes = (int)Math.Clamp(content.MaxEventBytes + 64 * 1024, 1_000_000, 1_000_000_000),
        };
        KafkaSettings.Apply(config, options.Client, "Kafka:Client");
        KafkaSettings.Apply(config, options.Producer, "Kafka:Producer");
        return config;
    }

    /// <summary>
    /// Waits until a broker answers (metadata of the event topic), for at most
    /// <see cref="KafkaOptions.StartupTimeout"/>: a worker started with its cluster, or before it,
    /// waits; one started against a wrong address stops with one sentence instead of waiting for ever.
    /// </summary>
    /// <exception cref="KafkaUnavailableException">No broker answered in time.</exception>
    /// <exception cref="KafkaException">The cluster refused the client (authentication, TLS): not worth waiting for.</exception>
    public async Task WaitForBrokersAsync(Retries retries, CancellationToken cancellationToken)
    {
        var config = new AdminClientConfig();
        KafkaSettings.Apply(config, _options.Client, "Kafka:Client");
        config.BootstrapServers = BootstrapServers;
        // Every failed connection is an error event: each kind is logged once (the wait itself speaks
        // every 10 s); a refusal of the client (authentication, TLS) ends the wait at once.
        var seen = new HashSet<ErrorCode>();
        Error? refused = null;
        using var admin = new AdminClientBuilder(config)
            .SetLogHandler((_, m) => OnLog(m))
            .SetErrorHandler((_, e) =>
            {
                lock (seen)
                {
                    if (seen.Add(e.Code)) LogError(_logger, e.IsFatal, e.Reason);
                    if (e.IsFatal || e.Code is ErrorCode.Local_Authentication or ErrorCode.SaslAuthenticationFailed or ErrorCode.Local_Ssl)
                        refused ??= new Error(e.Code, e.Reason, e.IsFatal); // a copy: the handler's instance is not ours to keep
                }
            })
            .Build();
        var timeout = _options.StartupTimeout;
        try
        {
            await retries.Startup("Kafka", timeout, e => IsUnreachable(e) && Volatile.Read(ref refused) is null).ExecuteAsync(async token =>
            {
                // Short requests, so that a stop request is honoured while waiting.
                var metadata = await Task.Run(() => admin.GetMetadata(_options.Topic, TimeSpan.FromSeconds(2)), token);
                lock (seen)
                    if (refused is not null) throw new KafkaException(refused);
                if (metadata.Brokers.Count == 0) throw new KafkaException(ErrorCode.Local_AllBrokersDown);
            }, cancellationToken);
        }
        catch (KafkaException) when (cancellationToken.IsCancellationRequested)
        {
            // A stop requested while a metadata request was under way.
            throw new OperationCanceledException(cancellationToken);
        }
        catch (KafkaException e) when (IsUnreachable(e))
        {
            lock (seen)
                if (refused is not null) throw new KafkaException(refused);
            throw new KafkaUnavailableException(
                $"Kafka at {BootstrapServers} is unreachable after {timeout.TotalSeconds:F0} s ({e.Error.Reason}); start it, or check Kafka:BootstrapServers (and Kafka:StartupTimeout)", e);
        }
    }

    private static bool IsUnreachable(Exception e) => e is KafkaException { Error.Code: ErrorCode.Local_Transport or ErrorCode.Local_AllBrokersDown or ErrorCode.Local_TimedOut or ErrorCode.Local_Resolve or ErrorCode.BrokerNotAvailable };

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

/// <summary>No Kafka broker answered within <see cref="KafkaOptions.StartupTimeout"/>.</summary>
public sealed class KafkaUnavailableException(string message, Exception inner) : Exception(message, inner);
