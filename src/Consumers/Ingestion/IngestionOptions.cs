using System.ComponentModel.DataAnnotations;

namespace FreeBind.Consumers.Ingestion;

/// <summary>Kafka and event-handling settings (configuration section <c>Kafka</c>).</summary>
public sealed class IngestionOptions
{
    public const string Section = "Kafka";

    /// <summary>Broker list; ignored when <see cref="Embedded"/> is true.</summary>
    public string BootstrapServers { get; set; } = "localhost:9092";

    /// <summary>Start librdkafka's in-process mock cluster and use it (demo, tests).</summary>
    public bool Embedded { get; set; }

    [Required] public string GroupId { get; set; } = "freebind-ingestion";
    [Required] public string Topic { get; set; } = "media.events";
    [Required] public string OutputTopic { get; set; } = "media.embedded";
    [Required] public string DeadLetterTopic { get; set; } = "media.events.dlq";

    /// <summary>Partitions of the topics the embedded cluster creates.</summary>
    [Range(1, 1024)] public int EmbeddedPartitions { get; set; } = 6;

    [Range(1000, 3_600_000)] public int SessionTimeoutMs { get; set; } = 45_000;
    [Range(1000, 86_400_000)] public int MaxPollIntervalMs { get; set; } = 300_000;

    /// <summary>Messages consumed but not yet durable; at this count partitions are paused (back-pressure).</summary>
    [Range(1, 1_000_000)] public int MaxInFlight { get; set; } = 2048;

    /// <summary>Paused partitions resume when in-flight messages drop to this count.</summary>
    [Range(0, 1_000_000)] public int ResumeInFlight { get; set; } = 1024;

    /// <summary>Most items written to Postgres in one transaction.</summary>
    [Range(1, 100_000)] public int WriteBatch { get; set; } = 1024;

    /// <summary>Concurrent write transactions per batch; each key always goes to the same one.</summary>
    [Range(1, 64)] public int WriteLanes { get; set; } = 2;

    /// <summary>How long a write batch waits for more finished items, in milliseconds.</summary>
    [Range(0, 60_000)] public int WriteLingerMs { get; set; } = 20;

    /// <summary>Largest decoded inline <c>data</c> payload.</summary>
    [Range(1, int.MaxValue)] public int MaxInlineBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>Largest serialised <c>metadata</c> object.</summary>
    [Range(2, int.MaxValue)] public int MaxMetadataBytes { get; set; } = 16 * 1024;

    /// <summary>Largest content fetched from a <c>uri</c>.</summary>
    [Range(1, long.MaxValue)] public long MaxFetchBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Folders <c>file://</c> URIs may point into; none allowed when empty.</summary>
    public List<string> AllowedFileRoots { get; set; } = [];

    /// <summary>Hosts <c>http(s)://</c> URIs may point to; none allowed when empty.</summary>
    public List<string> AllowedHttpHosts { get; set; } = [];

    [Range(100, 600_000)] public int FetchTimeoutMs { get; set; } = 10_000;

    /// <summary>Space the worker embeds into (a manifest name or path); default Spaces:Default.</summary>
    public string? Space { get; set; }

    /// <summary>Factor preset applied to the space, if any.</summary>
    public string? Preset { get; set; }

    /// <summary>Tags kept per item.</summary>
    [Range(0, 1000)] public int TagTopK { get; set; } = 5;

    /// <summary>Least cosine similarity for a tag.</summary>
    [Range(-1.0, 1.0)] public double TagThreshold { get; set; } = 0.2;

    /// <summary>Prompt template per item modality; <c>{label}</c> is replaced by the label.</summary>
    public Dictionary<string, string> TagTemplates { get; set; } = new()
    {
        ["image"] = "a photo of a {label}.",
        ["audio"] = "an audio of {label}.",
        ["text"] = "{label}",
    };
}
