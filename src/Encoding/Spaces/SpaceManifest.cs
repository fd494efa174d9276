using System.Text.Json;
using System.Text.Json.Serialization;

namespace FreeBind.Encoding.Spaces;

/// <summary>
/// A FreeBind space as data (docs/spaces.md): experts, projector sets, bonds in order, per-modality
/// factors, presets. File paths are relative to the model root the manifest is loaded with.
/// </summary>
public sealed class SpaceManifest
{
    public required string Name { get; set; }
    public string? Description { get; set; }

    /// <summary>The unified space the bonds start from (an expert name), e.g. <c>imagebind</c>.</summary>
    public required string Base { get; set; }

    /// <summary>Per-modality replacement of the base expert (the fine-tuned audio trunk).</summary>
    public SortedDictionary<string, string> BaseOverrides { get; set; } = [];

    public required SortedDictionary<string, ExpertSpec> Experts { get; set; }
    public SortedDictionary<string, ProjectorSetSpec> ProjectorSets { get; set; } = [];
    public List<BondSpec> Bonds { get; set; } = [];

    /// <summary>Preset name → bond id → modality → factor.</summary>
    public SortedDictionary<string, SortedDictionary<string, SortedDictionary<string, double>>> Presets { get; set; } = [];

    /// <summary>Dimension of the final vectors.</summary>
    public required int Dimension { get; set; }

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static SpaceManifest Parse(string json, string origin)
    {
        try
        {
            return JsonSerializer.Deserialize<SpaceManifest>(json, Json) ?? throw new SpaceValidationException([$"{origin}: manifest is empty"]);
        }
        catch (JsonException e)
        {
            throw new SpaceValidationException([$"{origin}: {e.Message}"]);
        }
    }

    /// <summary>Canonical JSON (sorted keys, no whitespace): the manifest part of the space digest.</summary>
    public string ToCanonicalJson() => JsonSerializer.Serialize(this, Json);

    public SpaceManifest Clone() => JsonSerializer.Deserialize<SpaceManifest>(ToCanonicalJson(), Json)!;
}

public sealed class ExpertSpec
{
    public required int Dimension { get; set; }

    /// <summary>Modality name → encoder model and preprocessing.</summary>
    public required SortedDictionary<string, ExpertModalitySpec> Modalities { get; set; }
}

public sealed class ExpertModalitySpec
{
    /// <summary>ONNX encoder file.</summary>
    public required string Model { get; set; }

    /// <summary>Preprocessing profile name (docs/preprocessing.md).</summary>
    public required string Profile { get; set; }

    /// <summary>Rows the encoder emits per item, averaged into one atom (ImageBind audio: 3 clips).</summary>
    public int Clips { get; set; } = 1;

    /// <summary>Tokenizer files the profile reads (text profiles).</summary>
    public List<string> Tokenizer { get; set; } = [];
}

public sealed class ProjectorSetSpec
{
    /// <summary>The expert whose embeddings (or whose space) feed these projectors.</summary>
    public required string Source { get; set; }
    public required int InputDimension { get; set; }
    public required int OutputDimension { get; set; }

    /// <summary>One ONNX file per projector (upstream: mix, A, T, V, AT, AV, TV).</summary>
    public List<string> Files { get; set; } = [];
}

public sealed class BondSpec
{
    public required string Id { get; set; }

    /// <summary><c>displacement</c> or <c>combination</c>.</summary>
    public required string Kind { get; set; }

    /// <summary>Displacement only: the expert whose space the base is moved into.</summary>
    public string? Expert { get; set; }

    /// <summary>Projector sets forming the mixture; several sets = a parallel bond.</summary>
    public List<string> Projectors { get; set; } = [];

    /// <summary>Displacement only: per-modality replacement of <see cref="Projectors"/>.</summary>
    public SortedDictionary<string, List<string>> ModalityProjectors { get; set; } = [];

    /// <summary>Modality → fusion factor f in [0,1] for the modalities this bond blends.</summary>
    public SortedDictionary<string, double> Factors { get; set; } = [];
}
