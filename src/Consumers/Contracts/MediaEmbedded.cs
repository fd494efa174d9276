using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace FreeBind.Consumers.Contracts;

/// <summary>A zero-shot tag in an output event.</summary>
/// <param name="Label">The label.</param>
/// <param name="Score">Cosine similarity of the item and the label's prompt.</param>
/// <param name="Vocabulary">The vocabulary id.</param>
public sealed record EmbeddedTag(
    [property: JsonPropertyName("label")] string Label,
    [property: JsonPropertyName("score")] float Score,
    [property: JsonPropertyName("vocabulary")] long Vocabulary);

/// <summary>
/// An output event of <c>media.embedded</c> (docs/events.md, schema 1): one per embedded item,
/// published after its rows are durable, for the active version of its space (or, while a space has
/// none, the version the worker registered).
/// </summary>
/// <param name="Id">Media id (also the message key).</param>
/// <param name="Tenant">From the input.</param>
/// <param name="Modality">From the input.</param>
/// <param name="Space">Space name.</param>
/// <param name="SpaceVersion">The version's digest.</param>
/// <param name="Sha256">Digest of the content bytes.</param>
/// <param name="Cached">The item was served from the cache (no decoding, no encoders).</param>
/// <param name="Tags">Best first.</param>
public sealed record MediaEmbedded(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("tenant")] string Tenant,
    [property: JsonPropertyName("modality")] string Modality,
    [property: JsonPropertyName("space")] string Space,
    [property: JsonPropertyName("space_version")] string SpaceVersion,
    [property: JsonPropertyName("sha256")] string Sha256,
    [property: JsonPropertyName("cached")] bool Cached,
    [property: JsonPropertyName("tags")] IReadOnlyList<EmbeddedTag> Tags)
{
    /// <summary>The value of the <c>schema</c> header of every output message.</summary>
    public const string SchemaHeaderValue = "freebind.embedded.v1";

    /// <summary>The name of that header.</summary>
    public const string SchemaHeader = "schema";

    private static readonly JsonSerializerOptions Json = new()
    {
        // Kafka values are not HTML: keep '+', '<', non-ASCII letters as they are.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The <c>schema</c> field: always 1 for this record.</summary>
    [JsonPropertyName("schema")]
    [JsonPropertyOrder(-1)]
    public int Schema { get; init; } = MediaEvent.SchemaVersion;

    /// <summary>UTF-8 JSON, as published.</summary>
    public byte[] ToUtf8Json() => JsonSerializer.SerializeToUtf8Bytes(this, Json);

    /// <summary>Reads a published value back.</summary>
    /// <exception cref="JsonException">Not an output event.</exception>
    public static MediaEmbedded Parse(ReadOnlySpan<byte> utf8Json) =>
        JsonSerializer.Deserialize<MediaEmbedded>(utf8Json, Json) ?? throw new JsonException("null output event");
}
