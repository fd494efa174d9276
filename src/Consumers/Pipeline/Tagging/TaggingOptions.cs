using System.ComponentModel.DataAnnotations;

namespace FreeBind.Consumers.Pipeline.Tagging;

/// <summary>Zero-shot tagging (configuration section <c>Tagging</c>).</summary>
public sealed class TaggingOptions
{
    public const string Section = "Tagging";

    /// <summary>Tags kept per item; 0 turns tagging off.</summary>
    [Range(0, 1000)] public int TopK { get; set; } = 5;

    /// <summary>Least cosine similarity for a tag.</summary>
    [Range(-1.0, 1.0)] public double Threshold { get; set; } = 0.2;

    /// <summary>Prompt template per item modality; <c>{label}</c> is replaced by the label.</summary>
    public Dictionary<string, string> Templates { get; set; } = new()
    {
        ["image"] = "a photo of a {label}.",
        ["audio"] = "an audio of {label}.",
        ["text"] = "{label}",
    };
}
