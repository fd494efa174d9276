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
    internal SpaceDefinition(SpaceManifest manifest, string modelRoot, string version, IReadOnlyDictionary<Modality, ModalityPlan> plans)
    {
        Manifest = manifest;
        ModelRoot = modelRoot;
        Version = version;
        Plans = plans;
    }

    /// <summary>The manifest with the effective factors written into its bonds.</summary>
    public SpaceManifest Manifest { get; }

    public string Name => Manifest.Name;
    public int Dimension => Manifest.Dimension;
    public string ModelRoot { get; }

    /// <summary><c>sha256:…</c> of the canonical manifest (effective factors included) and every file it references.</summary>
    public string Version { get; }

    /// <summary>First 12 hex digits of the digest, for display and table names.</summary>
    public string ShortVersion => Version["sha256:".Length..][..12];

    public IReadOnlyDictionary<Modality, ModalityPlan> Plans { get; }

    public string ResolvePath(string relative) => Path.GetFullPath(Path.Combine(ModelRoot, relative));

    public ExpertModalitySpec EncoderOf(string expert, Modality modality) => Manifest.Experts[expert].Modalities[modality.ToName()];

    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string, Modality), string> _modelDigests = new();

    /// <summary>SHA-256 of the encoder file an expert uses for a modality (stored with its atoms); computed once.</summary>
    public string ModelDigest(string expert, Modality modality) =>
        _modelDigests.GetOrAdd((expert, modality), k => SpaceLoader.FileDigest(ResolvePath(EncoderOf(k.Item1, k.Item2).Model)));
}
