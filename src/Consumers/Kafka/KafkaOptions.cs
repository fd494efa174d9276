using System.ComponentModel.DataAnnotations;

namespace FreeBind.Consumers.Kafka;

/// <summary>
/// Kafka connection and topics (configuration section <c>Kafka</c>). Any librdkafka property can be
/// passed through: <c>Kafka:Client:*</c> for both clients, <c>Kafka:Consumer:*</c> and
/// <c>Kafka:Producer:*</c> for one, by librdkafka name (<c>sasl.mechanism</c>) or Confluent.Kafka
/// property name (<c>SaslMechanism</c>). Secrets (passwords, private keys, OAuth client secrets) are
/// taken from the environment only and never logged.
/// </summary>
public sealed class KafkaOptions
{
    public const string Section = "Kafka";

    /// <summary>Broker list; ignored when <see cref="Embedded"/> is true.</summary>
    [Required] public string BootstrapServers { get; set; } = "localhost:9092";

    /// <summary>Start librdkafka's in-process mock cluster and use it (the demo's default).</summary>
    public bool Embedded { get; set; }

    /// <summary>Partitions of the topics the embedded cluster creates.</summary>
    [Range(1, 1024)] public int EmbeddedPartitions { get; set; } = 6;

    /// <summary>How long a starting worker waits for a broker to answer before it stops with one clear error.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan StartupTimeout { get; set; } = TimeSpan.FromSeconds(60);

    [Required] public string GroupId { get; set; } = "freebind-ingestion";
    [Required] public string Topic { get; set; } = "media.events";
    [Required] public string OutputTopic { get; set; } = "media.embedded";
    [Required] public string DeadLetterTopic { get; set; } = "media.events.dlq";

    /// <summary>librdkafka properties for both clients (security, timeouts, client id, …).</summary>
    public Dictionary<string, string> Client { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>librdkafka properties for the consumer only; they win over <see cref="Client"/>.</summary>
    public Dictionary<string, string> Consumer { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>librdkafka properties for the producer only; they win over <see cref="Client"/>.</summary>
    public Dictionary<string, string> Producer { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}
