using FreeBind.Encoding;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Spaces;

namespace FreeBind.Consumers.Spaces;

/// <summary>A space version the worker writes into, with the definition (encoders, bonds) loaded from its stored manifest.</summary>
/// <param name="Version">The stored version (its table exists).</param>
/// <param name="Definition">The validated definition; its digest equals the version's.</param>
public sealed record SpaceTarget(SpaceVersion Version, SpaceDefinition Definition);

/// <summary>
/// The versions of one space that an item is written into, as one immutable value: the worker
/// swaps it whole between write batches, so every item of a batch goes to the same versions.
/// </summary>
/// <param name="Space">Space name.</param>
/// <param name="Generation">Grows with every change of the set; a result computed for an older set is re-targeted.</param>
/// <param name="Targets">Oldest version first.</param>
public sealed record TargetSet(string Space, long Generation, IReadOnlyList<SpaceTarget> Targets)
{
    /// <summary>The active version, if the space has one among the targets.</summary>
    public SpaceTarget? Active => Targets.FirstOrDefault(t => t.Version.State == SpaceVersionState.Active);

    /// <summary>The version output events describe: the active one, else the newest.</summary>
    public SpaceTarget? Primary => Active ?? (Targets.Count > 0 ? Targets[^1] : null);

    /// <summary>The targets that serve a modality.</summary>
    public IReadOnlyList<SpaceTarget> Serving(Modality modality) => [.. Targets.Where(t => t.Definition.Plans.ContainsKey(modality))];

    /// <summary>A set of given targets (for callers outside live ingestion, e.g. a backfill of one building version).</summary>
    public static TargetSet Of(string space, params SpaceTarget[] targets) => new(space, 0, targets);

    /// <summary>One line for logs: <c>v3 (active), v5 (building)</c>.</summary>
    public string Describe() => Targets.Count == 0 ? "none" : string.Join(", ", Targets.Select(t => $"v{t.Version.Id} {t.Definition.ShortVersion} ({t.Version.State.ToString().ToLowerInvariant()})"));
}

/// <summary>A version that must be written cannot be loaded by this worker (its model files are missing or differ).</summary>
public sealed class TargetUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
