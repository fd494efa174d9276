using System.Globalization;
using System.Text;

namespace FreeBind.Consumers.Contracts;

/// <summary>Why and from where a message was dead-lettered: the headers added to its copy on <c>media.events.dlq</c>.</summary>
/// <param name="ErrorClass">One of <see cref="ErrorClasses"/>.</param>
/// <param name="ErrorMessage">The reason, one sentence (at most <see cref="DeadLetterHeaders.MaxMessageLength"/> characters).</param>
/// <param name="SourceTopic">Topic of the original message.</param>
/// <param name="SourcePartition">Its partition.</param>
/// <param name="SourceOffset">Its offset.</param>
/// <param name="Attempts">How often the message was tried.</param>
/// <param name="FailedAt">When it was given up (UTC, whole seconds).</param>
/// <param name="ValueDropped">
/// The original value is not in the copy (too large for the dead-letter topic); <see cref="ValueBytes"/>
/// and <see cref="ValueSha256"/> describe it.
/// </param>
/// <param name="ValueBytes">Size of the dropped value, when dropped.</param>
/// <param name="ValueSha256">SHA-256 (hex) of the dropped value, when dropped.</param>
public sealed record DeadLetter(string ErrorClass, string ErrorMessage, string SourceTopic, int SourcePartition, long SourceOffset,
    int Attempts, DateTimeOffset FailedAt, bool ValueDropped = false, long? ValueBytes = null, string? ValueSha256 = null);

/// <summary>The dead-letter headers (docs/events.md): names, values as UTF-8 strings, and both directions.</summary>
public static class DeadLetterHeaders
{
    public const string ErrorClass = "freebind.error.class";
    public const string ErrorMessage = "freebind.error.message";
    public const string SourceTopic = "freebind.source.topic";
    public const string SourcePartition = "freebind.source.partition";
    public const string SourceOffset = "freebind.source.offset";
    public const string Attempts = "freebind.attempts";
    public const string FailedAt = "freebind.failed_at";
    public const string ValueDropped = "freebind.value.dropped";
    public const string ValueBytes = "freebind.value.bytes";
    public const string ValueSha256 = "freebind.value.sha256";

    /// <summary>Longest <see cref="ErrorMessage"/> value, in characters.</summary>
    public const int MaxMessageLength = 4000;

    /// <summary>The <see cref="FailedAt"/> format: ISO 8601 UTC, whole seconds, e.g. <c>2026-11-28T16:05:00Z</c>.</summary>
    public const string TimestampFormat = "yyyy-MM-ddTHH:mm:ssZ";

    /// <summary>The headers to add to the copy, in order (after the original message's own headers).</summary>
    public static IEnumerable<(string Name, byte[] Value)> ToHeaders(DeadLetter d)
    {
        var inv = CultureInfo.InvariantCulture;
        yield return (ErrorClass, Utf8(d.ErrorClass));
        yield return (ErrorMessage, Utf8(d.ErrorMessage.Length > MaxMessageLength ? d.ErrorMessage[..MaxMessageLength] : d.ErrorMessage));
        yield return (SourceTopic, Utf8(d.SourceTopic));
        yield return (SourcePartition, Utf8(d.SourcePartition.ToString(inv)));
        yield return (SourceOffset, Utf8(d.SourceOffset.ToString(inv)));
        yield return (Attempts, Utf8(d.Attempts.ToString(inv)));
        yield return (FailedAt, Utf8(d.FailedAt.UtcDateTime.ToString(TimestampFormat, inv)));
        if (d.ValueDropped)
        {
            yield return (ValueDropped, Utf8("true"));
            yield return (ValueBytes, Utf8((d.ValueBytes ?? 0).ToString(inv)));
            yield return (ValueSha256, Utf8(d.ValueSha256 ?? ""));
        }
    }

    /// <summary>Reads the dead-letter headers of a copy (the last value of each name wins).</summary>
    /// <exception cref="FormatException">A header is missing or malformed.</exception>
    public static DeadLetter Read(IEnumerable<(string Name, byte[] Value)> headers)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in headers) map[name] = System.Text.Encoding.UTF8.GetString(value);
        string Get(string name) => map.TryGetValue(name, out var v) ? v : throw new FormatException($"dead letter without header {name}");
        var inv = CultureInfo.InvariantCulture;
        var dropped = map.GetValueOrDefault(ValueDropped) == "true";
        return new DeadLetter(Get(ErrorClass), Get(ErrorMessage), Get(SourceTopic), int.Parse(Get(SourcePartition), inv), long.Parse(Get(SourceOffset), inv),
            int.Parse(Get(Attempts), inv), DateTimeOffset.ParseExact(Get(FailedAt), TimestampFormat, inv, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal),
            dropped, dropped ? long.Parse(Get(ValueBytes), inv) : null, dropped ? Get(ValueSha256) : null);
    }

    private static byte[] Utf8(string value) => System.Text.Encoding.UTF8.GetBytes(value);
}
