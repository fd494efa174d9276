namespace FreeBind.Encoding.Spaces;

public enum BondKind
{
    Displacement,
    Combination,
}

/// <summary>How a bond step blends its mixture output.</summary>
public enum BlendKind
{
    /// <summary>Displacement for a modality the expert lacks: the output is <c>M(n(base))</c>.</summary>
    None,

    /// <summary>Displacement: <c>n(f·M + (1−f)·n(expert atom))</c>.</summary>
    ExpertAtom,

    /// <summary>Combination: <c>n(f·M + (1−f)·current)</c>.</summary>
    CurrentState,
}

/// <summary>One projector set inside a mixture and what feeds it: an expert's atom, or the current vector.</summary>
public sealed record MixtureInput(string ProjectorSet, string? AtomExpert);

/// <summary>One bond applied to one modality.</summary>
public sealed record BondStep(string BondId, BondKind Kind, IReadOnlyList<MixtureInput> Mixture, BlendKind Blend, string? BlendExpert, double Factor, int OutputDimension);

/// <summary>Everything needed to turn one modality's atoms into a vector of the space.</summary>
public sealed record ModalityPlan(Modality Modality, string BaseExpert, IReadOnlyList<BondStep> Steps, IReadOnlyList<string> Experts)
{
    /// <summary>A bond step that leaves this modality unchanged is omitted from <see cref="Steps"/>.</summary>
    public bool IsBaseOnly => Steps.Count == 0;
}

/// <summary>A validated space with its effective factors and content version.</summary>
public sealed class SpaceDefinition
{
    internal SpaceDefinition(SpaceManifest manifest, string modelRoot, string version, IReadOnlyDictionary<Modality, ModalityPlan> plans, SpaceFiles files, SpaceUse use)
    {
        Manifest = manifest;
        ModelRoot = modelRoot;
        Version = version;
        Plans = plans;
        Files = files;
        Use = use;
    }

    /// <summary>The manifest with the effective factors written into its bonds.</summary>
    public SpaceManifest Manifest { get; }

    public string Name => Manifest.Name;
    public int Dimension => Manifest.Dimension;
    public string ModelRoot { get; }

    /// <summary><c>sha256:</c> of the canonical manifest (effective factors included) and every file it covers (<see cref="Files"/>).</summary>
    public string Version { get; }

    /// <summary>First 12 hex digits of the digest, for display and table names.</summary>
    public string ShortVersion => Version["sha256:".Length..][..12];

    public IReadOnlyDictionary<Modality, ModalityPlan> Plans { get; }

    /// <summary>Every file the version covers with its digest: store it with the version, so a machine without the encoders can load the space for fusion.</summary>
    public SpaceFiles Files { get; }

    /// <summary>What the space was loaded for: <see cref="SpaceUse.Fuse"/> spaces have unchecked encoders and cannot embed media.</summary>
    public SpaceUse Use { get; }

    /// <summary>
    /// The version as a JSON document: <c>{"format","name","version","dimension","manifest","files","externalData"}</c>
    /// (the effective manifest and every covered file's SHA-256). Stored with the version, it is
    /// what <see cref="SpaceLoader.LoadStored"/> reloads for fusion on a machine without encoders.
    /// </summary>
    public System.Text.Json.Nodes.JsonObject ToJson()
    {
        var document = new System.Text.Json.Nodes.JsonObject
        {
            ["format"] = SpaceLoader.StoredFormat,
            ["name"] = Name,
            ["version"] = Version,
            ["dimension"] = Dimension,
            ["manifest"] = System.Text.Json.Nodes.JsonNode.Parse(Manifest.ToCanonicalJson()),
        };
        foreach (var (key, value) in Files.ToJson().ToList())
            document[key] = value?.DeepClone();
        return document;
    }

    public string ResolvePath(string relative) => Path.GetFullPath(Path.Combine(ModelRoot, relative));

    public ExpertModalitySpec EncoderOf(string expert, Modality modality) => Manifest.Experts[expert].Modalities[modality.ToName()];

    /// <summary>
    /// Digest of the encoder an expert uses for a modality, weights included (stored with its
    /// atoms). Known from the load, so it costs nothing, also for a fusion-only load.
    /// </summary>
    public string ModelDigest(string expert, Modality modality) =>
        _modelDigests.GetOrAdd((expert, modality), k =>
        {
            var model = EncoderOf(k.Expert, k.Modality).Model;
            return Files.Digests.ContainsKey(model) ? Files.ModelDigest(model) : SpaceLoader.FileDigest(ResolvePath(model));
        });

    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Expert, Modality Modality), string> _modelDigests = new();
}
