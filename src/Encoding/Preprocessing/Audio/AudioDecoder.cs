namespace FreeBind.Encoding.Preprocessing.Audio;

/// <summary>
/// Decodes untrusted audio bytes by content (the file name is only used in messages): WAV, FLAC,
/// MP3, Ogg Vorbis. Every failure is a <see cref="MediaException"/>.
/// </summary>
public static class AudioDecoder
{
    public static DecodedAudio Decode(ReadOnlyMemory<byte> bytes, AudioLimits limits, string? fileName = null)
    {
        var name = fileName is null ? "audio" : $"'{Path.GetFileName(fileName)}'";
        if (bytes.IsEmpty)
            throw new MediaException(MediaErrorKind.EmptyAudio, $"{name} is empty (0 bytes)");
        if (bytes.Length > limits.MaxBytes)
            throw new MediaException(MediaErrorKind.TooLarge, $"{name} is {bytes.Length} bytes; the limit is {limits.MaxBytes} (PreprocessingOptions.MaxAudioBytes)");
        var span = bytes.Span;
        if (WavDecoder.Sniff(span)) return WavDecoder.Decode(span, limits);
        if (FlacDecoder.Sniff(span)) return FlacDecoder.Decode(span, limits);
        if (CompressedDecoders.SniffOgg(span)) return CompressedDecoders.DecodeVorbis(bytes, limits);
        if (CompressedDecoders.SniffMp3(span)) return CompressedDecoders.DecodeMp3(bytes, limits);
        if (span.Length >= 4 && span[..4].SequenceEqual("RIFF"u8))
            throw new MediaException(MediaErrorKind.UnsupportedFormat, $"{name} is a RIFF file but not WAVE (e.g. AVI)");
        if (span.Length < 12)
            throw new MediaException(MediaErrorKind.Truncated, $"{name} is only {span.Length} bytes, too short for any audio header");
        throw new MediaException(MediaErrorKind.UnsupportedFormat,
            $"{name} is not a recognised audio format (WAV, FLAC, MP3 or Ogg Vorbis expected; the content does not start with any of their signatures)");
    }
}
