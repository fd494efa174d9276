using System.ComponentModel.DataAnnotations;

namespace FreeBind.Consumers.Ingestion;

/// <summary>How the worker embeds and writes (configuration section <c>Ingestion</c>).</summary>
public sealed class IngestionOptions
{
    public const string Section = "Ingestion";

    /// <summary>
    /// The space the worker serves (a manifest name or path); default Spaces:Default. Its live
    /// versions (active, building) are the write targets; when the space has no active version yet,
    /// the worker registers and activates this manifest's version.
    /// </summary>
    public string? Space { get; set; }

    /// <summary>Factor preset applied to the manifest when the worker registers its version.</summary>
    public string? Preset { get; set; }

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

    /// <summary>
    /// How often the write targets are re-read even without a notification, in seconds (the
    /// fallback for a missed <c>NOTIFY</c>).
    /// </summary>
    [Range(1, 3600)] public int TargetPollSeconds { get; set; } = 30;

    /// <summary>On a graceful stop, how long in-flight work may take to become durable, in seconds.</summary>
    [Range(1, 600)] public int DrainSeconds { get; set; } = 30;

    /// <summary>Tries of a remote source that times out or answers 5xx before it is dead-lettered as <c>fetch-failed</c>.</summary>
    [Range(1, 100)] public int RemoteAttempts { get; set; } = 4;

    /// <summary>Tries of an item that fails in a way nobody foresaw before it is dead-lettered as <c>internal</c>.</summary>
    [Range(1, 100)] public int UnforeseenAttempts { get; set; } = 3;
}
