using FreeBind.Encoding.Execution;

namespace FreeBind.Encoding.Spaces;

/// <summary>What a loaded space will be used for, and so which files it must read.</summary>
public enum SpaceUse
{
    /// <summary>Media → vectors: every encoder, tokenizer and projector file is read and checked.</summary>
    Embed,

    /// <summary>
    /// Atoms → vectors (re-fusion, backfill): only the projector files are read. The encoders' and
    /// tokenizers' digests, needed to name the version and the atoms, come from
    /// <see cref="SpaceLoadOptions.KnownFiles"/> (e.g. the stored version's), or from the files
    /// when they are present.
    /// </summary>
    Fuse,
}

/// <summary>How <see cref="SpaceLoader"/> loads a space.</summary>
public sealed record SpaceLoadOptions
{
    /// <summary>Preset and factor overrides applied to the manifest.</summary>
    public FactorSelection Factors { get; init; } = FactorSelection.None;

    /// <summary>Which files are read: all (<see cref="SpaceUse.Embed"/>) or the projectors only (<see cref="SpaceUse.Fuse"/>).</summary>
    public SpaceUse Use { get; init; } = SpaceUse.Embed;

    /// <summary>
    /// Digests the caller already knows (e.g. stored with the version). A file that is read must
    /// match its known digest; a file a fusion-only load does not read takes its digest from here.
    /// </summary>
    public SpaceFiles? KnownFiles { get; init; }

    /// <summary>Where file digests are cached; default <see cref="FileDigestCache.InProcess"/>.</summary>
    public FileDigestCache? Digests { get; init; }

    /// <summary>
    /// When set, an encoder whose file leaves its output width symbolic is run once on a zero input
    /// to measure it against the manifest (what <c>freebind spaces validate</c> does). Without it,
    /// the width is checked when the encoder's session is first opened.
    /// </summary>
    public SessionFactory? Probe { get; init; }
}
