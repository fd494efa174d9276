namespace FreeBind.Encoding.Preprocessing;

/// <summary>
/// Maps the profile names used in manifests to their preprocessors. Tokenizer files come from the
/// manifest (resolved to absolute paths); profiles that need none ignore them.
/// </summary>
public static class PreprocessorRegistry
{
    private delegate IPreprocessor Factory(IReadOnlyList<string> tokenizerFiles, PreprocessingOptions options);

    // One line per profile. Keep the names in step with docs/spaces.md and docs/preprocessing.md.
    private static readonly Dictionary<string, Factory> Factories = new(StringComparer.Ordinal)
    {
        // image profiles
        ["imagebind-vision"] = (_, options) => new Image.VisionPreprocessor(Image.VisionPreprocessor.ImageBind, options),
        ["internvl-vision"] = (_, options) => new Image.VisionPreprocessor(Image.VisionPreprocessor.InternVL, options),
        // audio profiles
        ["imagebind-audio"] = (_, options) => new Audio.ImageBindAudioPreprocessor(options),
        ["clap-fusion"] = (_, options) => new Audio.ClapFusionPreprocessor(options),
        ["clap"] = (_, options) => new Audio.ClapWaveformPreprocessor(options),
        // text profiles
        ["imagebind-text"] = Text.TextPreprocessor.ImageBind,
        ["clap-text"] = Text.TextPreprocessor.Clap,
        ["internvl-text"] = Text.TextPreprocessor.InternVL,
    };

    public static IReadOnlyCollection<string> Profiles => Factories.Keys;

    public static bool IsKnown(string profile) => Factories.ContainsKey(profile);

    public static IPreprocessor Create(string profile, IReadOnlyList<string> tokenizerFiles, PreprocessingOptions options) =>
        Factories.TryGetValue(profile, out var factory)
            ? factory(tokenizerFiles, options)
            : throw new ArgumentException($"unknown preprocessing profile '{profile}' (known: {string.Join(", ", Factories.Keys)})");
}
