using System.ComponentModel.DataAnnotations;

namespace FreeBind.Encoding.Spaces;

/// <summary>Where manifests and model files live (configuration section <c>Spaces</c>).</summary>
public sealed class SpacesOptions
{
    public const string Section = "Spaces";

    /// <summary>Folder of <c>*.json</c> manifests; relative paths are resolved against the application folder.</summary>
    [Required]
    public string ManifestDirectory { get; set; } = "spaces";

    /// <summary>Folder the manifests' file paths are relative to (your ONNX exports).</summary>
    [Required]
    public string ModelRoot { get; set; } = "models";

    /// <summary>The space used when a command names none.</summary>
    [Required]
    public string Default { get; set; } = "imagebind++";
}

/// <summary>Finds manifests by name or path.</summary>
public sealed class ManifestCatalog(SpacesOptions options)
{
    public SpacesOptions Options => options;

    public string ManifestDirectory => Path.GetFullPath(options.ManifestDirectory, AppContext.BaseDirectory);

    /// <summary>A manifest path: an existing file path, or a name looked up in <see cref="ManifestDirectory"/>.</summary>
    public string ManifestPath(string? nameOrPath)
    {
        var value = string.IsNullOrWhiteSpace(nameOrPath) ? options.Default : nameOrPath;
        if (value.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || value.Contains('/'))
            return Path.GetFullPath(value);
        var path = Path.Combine(ManifestDirectory, value + ".json");
        if (!File.Exists(path))
            throw new SpaceValidationException([$"no space named '{value}' in {ManifestDirectory} (spaces: {string.Join(", ", Names())})"]);
        return path;
    }

    public IReadOnlyList<string> Names() =>
        Directory.Exists(ManifestDirectory)
            ? Directory.GetFiles(ManifestDirectory, "*.json").Select(Path.GetFileNameWithoutExtension).OfType<string>().Order(StringComparer.Ordinal).ToList()
            : [];

    public SpaceDefinition Load(string? nameOrPath, string? modelRoot = null, FactorSelection? factors = null) =>
        SpaceLoader.Load(ManifestPath(nameOrPath), Path.GetFullPath(modelRoot ?? options.ModelRoot), factors);
}
