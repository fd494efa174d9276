using System.Text.Json;
using FreeBind.Encoding;

namespace FreeBind.Consumers.Contracts;

/// <summary>What an input event asks for.</summary>
public enum MediaEventType
{
    /// <summary>Create or replace the item.</summary>
    Upserted,

    /// <summary>Remove the item everywhere.</summary>
    Deleted,
}

/// <summary>Where the content of an upsert comes from: exactly one of text, inline data, or a URI.</summary>
public abstract record MediaSource
{
    /// <summary>The content itself (modality text).</summary>
    public sealed record Text(string Value) : MediaSource;

    /// <summary>Inline bytes (the event's base64 <c>data</c>).</summary>
    public sealed record Inline(byte[] Bytes) : MediaSource;

    /// <summary>A <c>file://</c> or <c>http(s)://</c> location.</summary>
    public sealed record Link(Uri Uri) : MediaSource;
}

/// <summary>An input event of <c>media.events</c> (docs/events.md, schema version 1), validated.</summary>
/// <param name="Id">Media id (= the message key when there is one).</param>
/// <param name="Tenant">Owner; selects the tag vocabularies.</param>
/// <param name="Type">Upsert or delete.</param>
/// <param name="Modality">How the content is decoded and encoded (upserts).</param>
/// <param name="Source">The content (upserts); null for a delete.</param>
/// <param name="Sha256">Declared digest of the content bytes (lower-case hex), checked when given.</param>
/// <param name="ContentType">MIME type hint.</param>
/// <param name="MetadataJson">A JSON object stored with the item.</param>
public sealed record MediaEvent(string Id, string Tenant, MediaEventType Type, Modality Modality, MediaSource? Source,
    string? Sha256, string? ContentType, string MetadataJson)
{
    /// <summary>The schema version this worker reads (the optional <c>schema</c> field).</summary>
    public const int SchemaVersion = 1;

    /// <summary>The <c>schema</c> field as given (<see cref="SchemaVersion"/>), or null when the event left it out.</summary>
    public int? Schema { get; init; }

    /// <summary>
    /// The event as a producer writes it (docs/events.md): what a replay tool, a backfill or a test
    /// producer sends, and what <see cref="MediaEventParser.Parse"/> reads back into an equal record.
    /// An empty <c>metadata</c> object is left out (the parser reads its absence as empty).
    /// </summary>
    public byte[] ToUtf8Json()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (Schema is { } schema) w.WriteNumber("schema", schema);
            w.WriteString("id", Id);
            w.WriteString("tenant", Tenant);
            w.WriteString("type", Type == MediaEventType.Upserted ? "upserted" : "deleted");
            if (Type == MediaEventType.Upserted)
            {
                w.WriteString("modality", Modality.ToName());
                switch (Source)
                {
                    case MediaSource.Text t: w.WriteString("text", t.Value); break;
                    case MediaSource.Inline d: w.WriteBase64String("data", d.Bytes); break;
                    case MediaSource.Link l: w.WriteString("uri", l.Uri.OriginalString); break;
                }
                if (Sha256 is not null) w.WriteString("sha256", Sha256);
                if (ContentType is not null) w.WriteString("content_type", ContentType);
                if (MetadataJson != "{}")
                {
                    w.WritePropertyName("metadata");
                    w.WriteRawValue(MetadataJson);
                }
            }
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }
}
