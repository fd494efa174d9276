using System.Globalization;

namespace FreeBind.Encoding.Spaces;

/// <summary>
/// Inference-time factor choice: an optional preset, then individual overrides
/// <c>[bond.]modality=f</c>. An unqualified modality targets the last bond that blends it
/// (the "fine" step of coarse-to-fine inference).
/// </summary>
public sealed record FactorSelection(string? Preset, IReadOnlyList<FactorOverride> Overrides)
{
    public static FactorSelection None { get; } = new(null, []);

    public bool IsEmpty => Preset is null && Overrides.Count == 0;

    public static FactorSelection Parse(string? preset, IEnumerable<string> overrides) =>
        new(string.IsNullOrWhiteSpace(preset) ? null : preset, overrides.Select(FactorOverride.Parse).ToList());
}

public sealed record FactorOverride(string? Bond, string Modality, double Factor)
{
    public static FactorOverride Parse(string text)
    {
        var eq = text.IndexOf('=');
        if (eq <= 0 || !double.TryParse(text[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var f))
            throw new FormatException($"factor '{text}' is not of the form [bond.]modality=number, e.g. audio=0.8 or clap.text=0.5");
        var key = text[..eq].Trim();
        var dot = key.LastIndexOf('.');
        return dot < 0 ? new FactorOverride(null, key, f) : new FactorOverride(key[..dot], key[(dot + 1)..], f);
    }

    /// <summary>The override as it is written: <c>[bond.]modality=f</c>.</summary>
    public override string ToString() => $"{(Bond is null ? "" : Bond + ".")}{Modality}={Factor.ToString(CultureInfo.InvariantCulture)}";
}
