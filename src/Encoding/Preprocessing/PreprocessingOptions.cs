namespace FreeBind.Encoding.Preprocessing;

/// <summary>Limits applied while decoding untrusted media.</summary>
public sealed class PreprocessingOptions
{
    /// <summary>Images whose header declares more pixels are refused before decoding.</summary>
    public long MaxImagePixels { get; set; } = 64L * 1024 * 1024;

    /// <summary>Text longer than this many characters is refused.</summary>
    public int MaxTextLength { get; set; } = 16 * 1024;

    /// <summary>Audio files larger than this many bytes are refused before decoding.</summary>
    public long MaxAudioBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Audio longer than this (declared or decoded) is refused; bounds memory per item.</summary>
    public double MaxAudioSeconds { get; set; } = 600;

    /// <summary>Audio with more channels than this is refused.</summary>
    public int MaxAudioChannels { get; set; } = 32;
}
