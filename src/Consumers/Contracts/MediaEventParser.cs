using System.Security.Cryptography;
using System.Text.Json;
using FreeBind.Encoding;

namespace FreeBind.Consumers.Contracts;

/// <summary>Caps applied while parsing an event, before any of its content is decoded.</summary>
/// <param name="MaxInlineBytes">Largest decoded inline <c>data</c>.</param>
/// <param name="MaxMetadataBytes">Largest serialised <c>metadata</c> object.</param>
public sealed record EventLimits(int MaxInlineBytes, int MaxMetadataBytes);

/// <summary>
/// Turns the bytes of a message into a <see cref="MediaEvent"/>, or a <see cref="RejectedException"/>
/// with a class and one sentence, whatever the bytes: invalid UTF-8 or JSON, duplicate fields,
/// values of the wrong type or form, strings that are not valid Unicode (lone surrogates), and
/// characters Postgres cannot store (NUL) are all refused here, before any work.
/// </summary>
public static class MediaEventParser
{
    private static readonly JsonDocumentOptions Options = new() { AllowDuplicateProperties = false, MaxDepth = 32 };

    /// <summary>Parses and validates one message value.</summary>
    /// <param name="value">The message value (null for a tombstone).</param>
    /// <param name="key">The message key, decoded as UTF-8, or null when the message has none.</param>
    /// <param name="limits">Size caps.</param>
    /// <exception cref="RejectedException">The event is invalid; its class and reason.</exception>
    public static MediaEvent Parse(ReadOnlyMemory<byte> value, string? key, EventLimits limits)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(value, Options);
        }
        catch (JsonException e)
        {
            throw new RejectedException(ErrorClasses.InvalidJson, $"value is not JSON: {e.Message}");
        }
        using (doc)
        {
            try
            {
                return Parse(doc.RootElement, key, limits);
            }
            catch (InvalidOperationException e)
            {
                // System.Text.Json refuses to decode a string escape that is not valid UTF-16 (a lone surrogate).
                throw Schema($"a string is not valid Unicode ({e.Message})");
            }
        }
    }

    private static MediaEvent Parse(JsonElement root, string? key, EventLimits limits)
    {
        if (root.ValueKind != JsonValueKind.Object) throw Schema("value must be a JSON object");
        int? schemaGiven = null;
        if (root.TryGetProperty("schema", out var schema))
        {
            if (!(schema.ValueKind == JsonValueKind.Number && schema.TryGetInt32(out var version) && version == MediaEvent.SchemaVersion))
                throw Schema($"unsupported schema {Shorten(schema.GetRawText())}; this worker reads schema {MediaEvent.SchemaVersion}");
            schemaGiven = version;
        }
        var id = RequiredString(root, "id", 256, plain: true);
        var tenant = RequiredString(root, "tenant", 128, plain: true);
        if (key is not null && key != id) throw Schema($"message key '{Shorten(key)}' differs from id '{id}'");
        var type = RequiredString(root, "type", 16, plain: true) switch
        {
            "upserted" => MediaEventType.Upserted,
            "deleted" => MediaEventType.Deleted,
            var t => throw Schema($"type '{t}' is not upserted or deleted"),
        };
        var modalityName = OptionalString(root, "modality", 32);
        Modality modality = default;
        if (modalityName is not null && !ModalityNames.TryParse(modalityName, out modality))
            throw new RejectedException(ErrorClasses.UnknownModality, $"modality '{modalityName}' is not image, audio or text");
        if (type == MediaEventType.Deleted)
            return new MediaEvent(id, tenant, type, modality, null, null, null, "{}") { Schema = schemaGiven };
        if (modalityName is null) throw Schema("an upserted event needs 'modality'");

        var sources = new[] { "text", "data", "uri" }.Where(name => root.TryGetProperty(name, out _)).ToList();
        if (sources.Count != 1)
            throw Schema(sources.Count == 0 ? "an upserted event needs one of text, data or uri" : $"give exactly one of text, data or uri, not {string.Join(" and ", sources)}");
        MediaSource source = sources[0] switch
        {
            "text" => new MediaSource.Text(RequiredString(root, "text", int.MaxValue, plain: false)),
            "data" => new MediaSource.Inline(Base64(root, limits)),
            _ => new MediaSource.Link(ParseUri(RequiredString(root, "uri", 4096, plain: true))),
        };
        if (source is MediaSource.Text && modality != Modality.Text) throw Schema($"'text' is only for modality text, not {modality.ToName()}");
        if (modality == Modality.Text && source is MediaSource.Link)
            throw Schema("modality text takes 'text' (or inline UTF-8 'data')");

        var sha = OptionalString(root, "sha256", 64)?.ToLowerInvariant();
        if (sha is not null && (sha.Length != 64 || !sha.All(char.IsAsciiHexDigit))) throw Schema("sha256 must be 64 hex digits");
        var contentType = OptionalString(root, "content_type", 256);
        var metadata = "{}";
        if (root.TryGetProperty("metadata", out var meta))
        {
            if (meta.ValueKind != JsonValueKind.Object) throw Schema("metadata must be a JSON object");
            metadata = meta.GetRawText();
            if (System.Text.Encoding.UTF8.GetByteCount(metadata) > limits.MaxMetadataBytes)
                throw new RejectedException(ErrorClasses.Oversize, $"metadata is larger than {limits.MaxMetadataBytes} bytes");
            CheckStorable(meta, "metadata");
        }
        return new MediaEvent(id, tenant, type, modality, source, sha, contentType, metadata) { Schema = schemaGiven };
    }

    /// <summary>Lower-case hex SHA-256 of content bytes (the digest events declare and items are stored under).</summary>
    public static string Sha256Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    // Postgres jsonb refuses \u0000 and numbers beyond its numeric range; refuse them here, with the path.
    private static void CheckStorable(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    if (property.Name.Contains('\0')) throw Schema($"{path} has a key with a NUL character, which Postgres cannot store");
                    CheckStorable(property.Value, path + "." + Shorten(property.Name));
                }
                break;
            case JsonValueKind.Array:
                var i = 0;
                foreach (var item in element.EnumerateArray()) CheckStorable(item, $"{path}[{i++}]");
                break;
            case JsonValueKind.String:
                if (element.GetString()!.Contains('\0')) throw Schema($"{path} holds a NUL character, which Postgres cannot store");
                break;
            case JsonValueKind.Number:
                if (!element.TryGetDouble(out var number) || !double.IsFinite(number))
                    throw Schema($"{path} is a number outside the double range");
                break;
        }
    }

    private static byte[] Base64(JsonElement root, EventLimits limits)
    {
        var text = root.GetProperty("data");
        if (text.ValueKind != JsonValueKind.String) throw Schema("data must be a base64 string");
        // Refuse before decoding: 4 base64 characters carry 3 bytes.
        if (text.GetRawText().Length / 4L * 3 > limits.MaxInlineBytes + 6L)
            throw new RejectedException(ErrorClasses.Oversize, $"inline data is larger than {limits.MaxInlineBytes} bytes; send a uri instead");
        if (!text.TryGetBytesFromBase64(out var bytes)) throw Schema("data is not valid base64");
        if (bytes.Length > limits.MaxInlineBytes)
            throw new RejectedException(ErrorClasses.Oversize, $"inline data is larger than {limits.MaxInlineBytes} bytes; send a uri instead");
        return bytes;
    }

    private static Uri ParseUri(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var uri) ? uri : throw Schema($"uri '{Shorten(text)}' is not an absolute URI");

    // "plain": identifiers and URIs, which must hold no control characters (NUL would not even store).
    private static string RequiredString(JsonElement root, string name, int maxLength, bool plain)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String)
            throw Schema($"missing string field '{name}'");
        if (value.GetRawText().Length > (long)maxLength * 6 + 2) throw Schema($"'{name}' is longer than {maxLength} characters");
        var s = value.GetString()!;
        if (s.Length == 0) throw Schema($"'{name}' is empty");
        if (s.Length > maxLength) throw Schema($"'{name}' is longer than {maxLength} characters");
        if (plain && s.Any(char.IsControl)) throw Schema($"'{name}' holds a control character");
        return s;
    }

    private static string? OptionalString(JsonElement root, string name, int maxLength)
    {
        if (!root.TryGetProperty(name, out var value)) return null;
        if (value.ValueKind != JsonValueKind.String) throw Schema($"'{name}' must be a string");
        if (value.GetRawText().Length > (long)maxLength * 6 + 2) throw Schema($"'{name}' is longer than {maxLength} characters");
        var s = value.GetString()!;
        if (s.Length > maxLength) throw Schema($"'{name}' is longer than {maxLength} characters");
        if (s.Any(char.IsControl)) throw Schema($"'{name}' holds a control character");
        return s;
    }

    private static string Shorten(string s) => s.Length <= 64 ? s : s[..64] + "…";

    private static RejectedException Schema(string message) => new(ErrorClasses.Schema, message);
}
