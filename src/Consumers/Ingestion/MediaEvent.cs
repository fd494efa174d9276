using System.Security.Cryptography;
using System.Text.Json;
using FreeBind.Encoding;

namespace FreeBind.Consumers.Ingestion;

public enum MediaEventType
{
    Upserted,
    Deleted,
}

/// <summary>Where the content of an upsert comes from: exactly one of text, inline data, or a URI.</summary>
public abstract record MediaSource
{
    public sealed record Text(string Value) : MediaSource;
    public sealed record Inline(byte[] Bytes) : MediaSource;
    public sealed record Link(Uri Uri) : MediaSource;
}

/// <summary>An input event (docs/events.md, schema version 1).</summary>
public sealed record MediaEvent(string Id, string Tenant, MediaEventType Type, Modality Modality, MediaSource? Source,
    string? Sha256, string? ContentType, string MetadataJson)
{
    public const int SchemaVersion = 1;

    /// <summary>Parses and validates one message value; throws <see cref="PoisonException"/> with a reason.</summary>
    public static MediaEvent Parse(ReadOnlySpan<byte> value, string? key, IngestionOptions options)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(value.ToArray());
        }
        catch (JsonException e)
        {
            throw new PoisonException(PoisonException.InvalidJson, $"value is not JSON: {e.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Schema("value must be a JSON object");
            if (root.TryGetProperty("schema", out var schema) && (schema.ValueKind != JsonValueKind.Number || schema.GetInt32() != SchemaVersion))
                throw Schema($"unsupported schema {schema}; this worker reads schema {SchemaVersion}");
            var id = RequiredString(root, "id", 256);
            var tenant = RequiredString(root, "tenant", 128);
            if (key is not null && key != id) throw Schema($"message key '{key}' differs from id '{id}'");
            var type = RequiredString(root, "type", 16) switch
            {
                "upserted" => MediaEventType.Upserted,
                "deleted" => MediaEventType.Deleted,
                var t => throw Schema($"type '{t}' is not upserted or deleted"),
            };
            var modalityName = OptionalString(root, "modality");
            Modality modality = default;
            if (modalityName is not null && !ModalityNames.TryParse(modalityName, out modality))
                throw new PoisonException(PoisonException.UnknownModality, $"modality '{modalityName}' is not image, audio or text");
            if (type == MediaEventType.Deleted)
                return new MediaEvent(id, tenant, type, modality, null, null, null, "{}");
            if (modalityName is null) throw Schema("an upserted event needs 'modality'");

            var sources = new[] { "text", "data", "uri" }.Where(name => root.TryGetProperty(name, out _)).ToList();
            if (sources.Count != 1)
                throw Schema(sources.Count == 0 ? "an upserted event needs one of text, data or uri" : $"give exactly one of text, data or uri, not {string.Join(" and ", sources)}");
            MediaSource source = sources[0] switch
            {
                "text" => new MediaSource.Text(RequiredString(root, "text", int.MaxValue)),
                "data" => new MediaSource.Inline(Base64(root, options)),
                _ => new MediaSource.Link(ParseUri(RequiredString(root, "uri", 4096))),
            };
            if (source is MediaSource.Text && modality != Modality.Text) throw Schema($"'text' is only for modality text, not {modality.ToName()}");
            if (modality == Modality.Text && source is not MediaSource.Text && source is not MediaSource.Inline)
                throw Schema("modality text takes 'text' (or inline UTF-8 'data')");

            var sha = OptionalString(root, "sha256")?.ToLowerInvariant();
            if (sha is not null && (sha.Length != 64 || !sha.All(Uri.IsHexDigit))) throw Schema("sha256 must be 64 hex digits");
            var metadata = "{}";
            if (root.TryGetProperty("metadata", out var meta))
            {
                if (meta.ValueKind != JsonValueKind.Object) throw Schema("metadata must be a JSON object");
                metadata = meta.GetRawText();
                if (System.Text.Encoding.UTF8.GetByteCount(metadata) > options.MaxMetadataBytes)
                    throw new PoisonException(PoisonException.Oversize, $"metadata is larger than {options.MaxMetadataBytes} bytes");
            }
            return new MediaEvent(id, tenant, type, modality, source, sha, OptionalString(root, "content_type"), metadata);
        }
    }

    private static byte[] Base64(JsonElement root, IngestionOptions options)
    {
        var text = root.GetProperty("data");
        if (text.ValueKind != JsonValueKind.String) throw Schema("data must be a base64 string");
        var encoded = text.GetString()!;
        // Refuse before decoding: 4 base64 characters carry 3 bytes.
        if ((long)encoded.Length / 4 * 3 > options.MaxInlineBytes + 3L)
            throw new PoisonException(PoisonException.Oversize, $"inline data is larger than {options.MaxInlineBytes} bytes; send a uri instead");
        try
        {
            var bytes = Convert.FromBase64String(encoded);
            if (bytes.Length > options.MaxInlineBytes)
                throw new PoisonException(PoisonException.Oversize, $"inline data is larger than {options.MaxInlineBytes} bytes; send a uri instead");
            return bytes;
        }
        catch (FormatException)
        {
            throw Schema("data is not valid base64");
        }
    }

    private static Uri ParseUri(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var uri) ? uri : throw Schema($"uri '{text}' is not an absolute URI");

    private static string RequiredString(JsonElement root, string name, int maxLength)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(value.GetString()))
            throw Schema($"missing or empty string field '{name}'");
        var s = value.GetString()!;
        if (s.Length > maxLength) throw Schema($"'{name}' is longer than {maxLength} characters");
        return s;
    }

    private static string? OptionalString(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value)
            ? value.ValueKind == JsonValueKind.String ? value.GetString() : throw Schema($"'{name}' must be a string")
            : null;

    private static PoisonException Schema(string message) => new(PoisonException.SchemaViolation, message);

    public static string Sha256Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}

/// <summary>A message that can never succeed: it goes to the dead-letter topic with this class and reason.</summary>
public sealed class PoisonException(string errorClass, string message, Exception? inner = null) : Exception(message, inner)
{
    public const string InvalidJson = "invalid-json";
    public const string SchemaViolation = "schema";
    public const string UnknownModality = "unknown-modality";
    public const string Oversize = "oversize";
    public const string ForbiddenUri = "forbidden-uri";
    public const string FetchFailed = "fetch-failed";
    public const string DigestMismatch = "sha256-mismatch";
    public const string ModelOutput = "model-output";

    /// <summary>Stable class name (DLQ header <c>error.class</c>); decode errors use <c>decode.&lt;kind&gt;</c>.</summary>
    public string ErrorClass { get; } = errorClass;
}
