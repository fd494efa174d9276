namespace FreeBind.Persistence.Spaces;

/// <summary>A stored space version: one manifest, its vectors in their own table.</summary>
/// <param name="Id">Database id; also names the embedding table.</param>
/// <param name="Space">Space name, e.g. <c>imagebind++</c>.</param>
/// <param name="Digest">Content digest of the manifest.</param>
/// <param name="Dimension">Width of the fused vectors.</param>
/// <param name="State">Lifecycle state.</param>
/// <param name="TableName">The embedding table (<c>embeddings_v{Id}</c>); it exists only while <see cref="HasTable"/>.</param>
public sealed record SpaceVersion(int Id, string Space, string Digest, int Dimension, SpaceVersionState State, string TableName)
{
    /// <summary>Identifies the version in cache keys and logs: <c>space@digest</c>.</summary>
    public string Key => $"{Space}@{Digest}";

    /// <summary>True while the version's embedding table exists (building, ready, active, retired).</summary>
    public bool HasTable => State is SpaceVersionState.Building or SpaceVersionState.Ready or SpaceVersionState.Active or SpaceVersionState.Retired;
}

/// <summary>
/// Lifecycle of a space version (migration 3): building → ready → active → retired → dropped, or
/// building/ready → cancelled/failed. At most one version of a space is active.
/// </summary>
public enum SpaceVersionState
{
    /// <summary>Being filled (backfill and live dual-writes); not visible to <c>freebind_search</c>.</summary>
    Building,

    /// <summary>Filled, indexed and verified; waiting for its cut-over. Still written by live ingestion.</summary>
    Ready,

    /// <summary>The version queries use; at most one per space.</summary>
    Active,

    /// <summary>Replaced by a cut-over or rolled back; kept (and still written) until its retention ends, for rollback.</summary>
    Retired,

    /// <summary>Retired and past its retention: its table is gone.</summary>
    Dropped,

    /// <summary>Abandoned while building or ready (by an operator); its table is gone.</summary>
    Cancelled,

    /// <summary>Abandoned while building or ready (the run failed); its table is gone.</summary>
    Failed,
}

/// <summary>A version with its lifecycle timestamps, as <c>spaces versions</c> and <c>reembed status</c> show it.</summary>
/// <param name="Version">The version.</param>
/// <param name="CreatedAt">When it was registered (or registered again after it had ended).</param>
/// <param name="ReadyAt">When it passed its verify gate.</param>
/// <param name="ActivatedAt">When it last became active.</param>
/// <param name="RetiredAt">When it last stopped being active.</param>
/// <param name="RetainUntil">While retired: until when it is kept for rollback.</param>
/// <param name="EndedAt">When its table was dropped (dropped, cancelled, failed).</param>
/// <param name="EndReason">Why it ended, one sentence.</param>
/// <param name="PreviousId">The version it replaced at its cut-over (its rollback target).</param>
public sealed record SpaceVersionDetails(
    SpaceVersion Version,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ReadyAt,
    DateTimeOffset? ActivatedAt,
    DateTimeOffset? RetiredAt,
    DateTimeOffset? RetainUntil,
    DateTimeOffset? EndedAt,
    string? EndReason,
    int? PreviousId);

/// <summary>A version live ingestion must write, with the manifest it was registered with.</summary>
/// <param name="Version">The version (building, ready, active, or retired and retained).</param>
/// <param name="ManifestJson">The stored manifest (canonical JSON).</param>
public sealed record SpaceWriteTarget(SpaceVersion Version, string ManifestJson);
