namespace FreeBind.Persistence.Spaces;

/// <summary>A stored space version: one manifest, its vectors in their own table.</summary>
/// <param name="Id">Database id; also names the embedding table.</param>
/// <param name="Space">Space name, e.g. <c>imagebind++</c>.</param>
/// <param name="Digest">Content digest of the manifest.</param>
/// <param name="Dimension">Width of the fused vectors.</param>
/// <param name="State">Lifecycle state.</param>
/// <param name="TableName">The embedding table (<c>embeddings_v{Id}</c>).</param>
public sealed record SpaceVersion(int Id, string Space, string Digest, int Dimension, SpaceVersionState State, string TableName)
{
    /// <summary>Identifies the version in cache keys and logs: <c>space@digest</c>.</summary>
    public string Key => $"{Space}@{Digest}";
}

/// <summary>Lifecycle of a space version: filled while building, served while active, kept while retired.</summary>
public enum SpaceVersionState
{
    /// <summary>Being filled (backfill); not visible to <c>freebind_search</c>.</summary>
    Building,

    /// <summary>The version queries use; at most one per space.</summary>
    Active,

    /// <summary>Replaced by a newer active version.</summary>
    Retired,
}
