using System.ComponentModel.DataAnnotations;
using FreeBind.Consumers.Contracts;

namespace FreeBind.Consumers.Pipeline.Content;

/// <summary>What an event may carry and point to (configuration section <c>Content</c>).</summary>
public sealed class ContentOptions
{
    public const string Section = "Content";

    /// <summary>
    /// Largest decoded inline <c>data</c>. Its base64 form must also fit in a Kafka message: the
    /// default keeps an event under the broker's default 1 MB limit; raise it together with the
    /// topic's <c>max.message.bytes</c>.
    /// </summary>
    [Range(1, 256 * 1024 * 1024)] public int MaxInlineBytes { get; set; } = 512 * 1024;

    /// <summary>Largest serialised <c>metadata</c> object.</summary>
    [Range(2, 16 * 1024 * 1024)] public int MaxMetadataBytes { get; set; } = 16 * 1024;

    /// <summary>Largest content read from a <c>uri</c> (checked before and while reading).</summary>
    [Range(1, long.MaxValue)] public long MaxFetchBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Timeout of one <c>http(s)</c> fetch, in milliseconds.</summary>
    [Range(100, 600_000)] public int FetchTimeoutMs { get; set; } = 10_000;

    /// <summary>
    /// Inline content up to this size is kept with the item (table <c>media_content</c>) so that a
    /// re-embedding can re-encode it; larger inline content is not kept and such an item cannot be
    /// re-encoded. Text is always kept. 0 keeps no inline data.
    /// </summary>
    [Range(0, 256 * 1024 * 1024)] public int MaxStoredInlineBytes { get; set; } = 1024 * 1024;

    /// <summary>Folders <c>file://</c> URIs may point into; none allowed when empty.</summary>
    public List<string> AllowedFileRoots { get; set; } = [];

    /// <summary>Hosts <c>http(s)://</c> URIs may point to; none allowed when empty.</summary>
    public List<string> AllowedHttpHosts { get; set; } = [];

    /// <summary>The caps the event parser applies.</summary>
    public EventLimits Limits => new(MaxInlineBytes, MaxMetadataBytes);

    /// <summary>
    /// The largest message value this policy can accept: the inline cap in base64, the metadata cap
    /// and room for the other fields. The worker's producer must be able to carry a dead-letter copy of it.
    /// </summary>
    public long MaxEventBytes => (MaxInlineBytes + 2L) / 3 * 4 + MaxMetadataBytes + 64 * 1024;
}
