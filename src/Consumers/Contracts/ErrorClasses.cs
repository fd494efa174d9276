namespace FreeBind.Consumers.Contracts;

/// <summary>
/// Why an event was dead-lettered: the stable class names of the <c>freebind.error.class</c>
/// header (docs/events.md), for routing and alerts.
/// </summary>
public static class ErrorClasses
{
    /// <summary>The value is not JSON.</summary>
    public const string InvalidJson = "invalid-json";

    /// <summary>A field missing, of the wrong type or form, not valid Unicode; several sources; key ≠ id; unsupported schema.</summary>
    public const string Schema = "schema";

    /// <summary>A modality other than image/audio/text, or one the space does not serve.</summary>
    public const string UnknownModality = "unknown-modality";

    /// <summary>Inline data, metadata or fetched content over its cap.</summary>
    public const string Oversize = "oversize";

    /// <summary>
    /// A scheme other than file/http(s), a host not allowed, or a file that cannot be read under the
    /// allowed roots (missing, not a regular file, or outside them: deliberately one answer).
    /// </summary>
    public const string ForbiddenUri = "forbidden-uri";

    /// <summary>A remote source kept failing (timeouts, 5xx) or refused the request.</summary>
    public const string FetchFailed = "fetch-failed";

    /// <summary>The content's digest differs from the declared <c>sha256</c>.</summary>
    public const string DigestMismatch = "sha256-mismatch";

    /// <summary>An encoder or projector produced NaN/Inf.</summary>
    public const string ModelOutput = "model-output";

    /// <summary>Postgres refused the item for good (a data or constraint error, a trigger); the message has its SQLSTATE.</summary>
    public const string Database = "database";

    /// <summary>An unforeseen failure (a bug) that repeated on every attempt; the message names the exception type.</summary>
    public const string Internal = "internal";

    /// <summary>Media that could not be decoded: <c>decode.&lt;kind&gt;</c> (docs/preprocessing.md).</summary>
    public static string Decode(string kind) => "decode." + kind;
}

/// <summary>An event that can never succeed: it is dead-lettered with this class and reason.</summary>
/// <param name="errorClass">One of <see cref="ErrorClasses"/>.</param>
/// <param name="message">One sentence a producer can act on.</param>
/// <param name="inner">The underlying failure, if any.</param>
public sealed class RejectedException(string errorClass, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The stable class (dead-letter header <c>freebind.error.class</c>).</summary>
    public string ErrorClass { get; } = errorClass;
}
