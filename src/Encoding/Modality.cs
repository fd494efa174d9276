namespace FreeBind.Encoding;

/// <summary>The three modalities a FreeBind space embeds.</summary>
public enum Modality
{
    Image,
    Audio,
    Text,
}

/// <summary>Lower-case names used in manifests, JSON lines and the CLI.</summary>
public static class ModalityNames
{
    public static string ToName(this Modality modality) => modality switch
    {
        Modality.Image => "image",
        Modality.Audio => "audio",
        Modality.Text => "text",
        _ => throw new ArgumentOutOfRangeException(nameof(modality)),
    };

    public static bool TryParse(string? name, out Modality modality)
    {
        switch (name)
        {
            case "image": modality = Modality.Image; return true;
            case "audio": modality = Modality.Audio; return true;
            case "text": modality = Modality.Text; return true;
            default: modality = default; return false;
        }
    }

    public static Modality Parse(string name) =>
        TryParse(name, out var m) ? m : throw new ArgumentException($"unknown modality '{name}' (expected image, audio or text)", nameof(name));
}
