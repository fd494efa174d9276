namespace FreeBind.Encoding.Preprocessing;

/// <summary>Why an input could not be turned into tensors; the name is stable (DLQ headers use it).</summary>
public enum MediaErrorKind
{
    CorruptData,
    Truncated,
    UnsupportedFormat,
    EmptyAudio,
    TooManyPixels,
    EmptyText,
    TooLarge,
}

/// <summary>A bad input, with a reason a person can act on. Never a crash of the worker.</summary>
public sealed class MediaException(MediaErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    public MediaErrorKind Kind { get; } = kind;
}
