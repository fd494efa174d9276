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

    /// <summary>
    /// Folder where file digests are kept across processes, so an unchanged model file is hashed
    /// once (entries are trusted only while the file's inode, size and times are unchanged). Empty:
    /// <c>$XDG_CACHE_HOME/freebind/digests</c> (else <c>~/.cache/freebind/digests</c>); <c>off</c>: hash on every start.
    /// </summary>
    public string DigestCache { get; set; } = "";

    /// <summary>The digest cache folder this setting means, or null when it is off (or there is no home folder).</summary>
    public string? DigestCacheDirectory()
    {
        if (string.Equals(DigestCache, "off", StringComparison.OrdinalIgnoreCase)) return null;
        if (!string.IsNullOrWhiteSpace(DigestCache)) return Path.GetFullPath(DigestCache);
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var baseDir = !string.IsNullOrWhiteSpace(xdg) && Path.IsPathRooted(xdg) ? xdg
            : !string.IsNullOrWhiteSpace(home) ? Path.Combine(home, ".cache")
            : null;
        return baseDir is null ? null : Path.Combine(baseDir, "freebind", "digests");
    }
}

/// <summary>Finds manifests by name or path, and loads them with the configured model root and digest cache.</summary>
public sealed class ManifestCatalog(SpacesOptions options)
{
    public SpacesOptions Options => options;

    /// <summary>The process's file digest cache (<see cref="SpacesOptions.DigestCache"/>).</summary>
    public FileDigestCache Digests { get; } = new(options.DigestCacheDirectory());

    public string ManifestDirectory => Path.GetFullPath(options.ManifestDirectory, AppContext.BaseDirectory);

    /// <summary>A manifest path: an existing file path, or a name looked up in <see cref="ManifestDirectory"/>.</summary>
    /// <exception cref="SpaceChoiceException">No such space or file.</exception>
    public string ManifestPath(string? nameOrPath)
    {
        var value = string.IsNullOrWhiteSpace(nameOrPath) ? options.Default : nameOrPath;
        if (value.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || value.Contains('/'))
        {
            var path = Path.GetFullPath(value);
            return File.Exists(path) ? path : throw new SpaceChoiceException(SpaceChoice.Space, value, $"no manifest file '{path}'");
        }
        var named = Path.Combine(ManifestDirectory, value + ".json");
        if (!File.Exists(named))
            throw new SpaceChoiceException(SpaceChoice.Space, value, $"no space named '{value}' in {ManifestDirectory} (spaces: {string.Join(", ", Names())})");
        return named;
    }

    public IReadOnlyList<string> Names() =>
        Directory.Exists(ManifestDirectory)
            ? Directory.GetFiles(ManifestDirectory, "*.json").Select(Path.GetFileNameWithoutExtension).OfType<string>().Order(StringComparer.Ordinal).ToList()
            : [];

    /// <summary>The model root: <paramref name="modelRoot"/> if given, else <see cref="SpacesOptions.ModelRoot"/>, as a full path.</summary>
    public string ModelRoot(string? modelRoot = null) => Path.GetFullPath(string.IsNullOrWhiteSpace(modelRoot) ? options.ModelRoot : modelRoot);

    /// <summary>Loads a space for embedding (every file read and checked).</summary>
    public SpaceDefinition Load(string? nameOrPath, string? modelRoot = null, FactorSelection? factors = null) =>
        Load(nameOrPath, modelRoot, new SpaceLoadOptions { Factors = factors ?? FactorSelection.None });

    /// <summary>Loads a space as <paramref name="load"/> says (e.g. <see cref="SpaceUse.Fuse"/>), with this catalog's digest cache unless it names one.</summary>
    public SpaceDefinition Load(string? nameOrPath, string? modelRoot, SpaceLoadOptions load) =>
        SpaceLoader.Load(ManifestPath(nameOrPath), ModelRoot(modelRoot), load.Digests is null ? load with { Digests = Digests } : load);
}
