namespace FreeBind.Encoding.Spaces;

/// <summary>Everything wrong with a space's manifest or its model files, each a precise sentence, all at once.</summary>
public sealed class SpaceValidationException(IReadOnlyList<string> errors, string? space = null)
    : Exception($"{(space is null ? "the space" : $"space '{space}'")} does not validate:\n  - " + string.Join("\n  - ", errors))
{
    public IReadOnlyList<string> Errors { get; } = errors;

    /// <summary>The space's name, when the manifest could be read.</summary>
    public string? Space { get; } = space;
}

/// <summary>The part of a space choice a caller made, as opposed to what a manifest says.</summary>
public enum SpaceChoice
{
    /// <summary>The space name or manifest path.</summary>
    Space,

    /// <summary>The model root (folder of the ONNX exports).</summary>
    Models,

    /// <summary>A named factor preset.</summary>
    Preset,

    /// <summary>A factor override <c>[bond.]modality=f</c>.</summary>
    Factor,
}

/// <summary>One wrong choice: which part, the value given, and why it cannot be used.</summary>
public sealed record SpaceChoiceError(SpaceChoice Part, string Value, string Message);

/// <summary>
/// The caller chose something that does not exist or is out of range (an unknown space, a model
/// folder without the exports, an unknown preset, a factor outside [0, 1]): the manifest is fine.
/// Commands name the flag or setting the value came from.
/// </summary>
public sealed class SpaceChoiceException(IReadOnlyList<SpaceChoiceError> errors)
    : Exception(string.Join("; ", errors.Select(e => e.Message)))
{
    public SpaceChoiceException(SpaceChoice part, string value, string message) : this([new SpaceChoiceError(part, value, message)])
    {
    }

    public IReadOnlyList<SpaceChoiceError> Errors { get; } = errors;
}
