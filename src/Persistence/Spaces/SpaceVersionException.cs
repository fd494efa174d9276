namespace FreeBind.Persistence.Spaces;

/// <summary>Why a version operation was refused. Nothing was changed when one is raised.</summary>
public enum SpaceVersionRefusal
{
    /// <summary>The space has no registered version at all.</summary>
    UnknownSpace,

    /// <summary>No version with that id or digest exists in the space.</summary>
    UnknownVersion,

    /// <summary>The version's table is gone (dropped, cancelled or failed); register it again to rebuild it.</summary>
    Ended,

    /// <summary>The operation needs a state the version is not in (e.g. cut-over of a version that is not ready).</summary>
    WrongState,

    /// <summary>Marking ready needs a valid HNSW index on the version's table.</summary>
    IndexMissing,

    /// <summary>Marking ready needs a passed verification of the version.</summary>
    NotVerified,

    /// <summary>A first activation was asked while another version is active (use a cut-over).</summary>
    AnotherActive,

    /// <summary>The space has no active version to roll back or compare with.</summary>
    NoActiveVersion,

    /// <summary>Rollback has no retained previous version to return to.</summary>
    NothingToRollBack,
}

/// <summary>
/// A refused version operation, with one sentence an operator can act on as <see cref="Exception.Message"/>.
/// Raised before anything is changed, so retrying the same call is safe.
/// </summary>
public sealed class SpaceVersionException : Exception
{
    /// <summary>Creates the error.</summary>
    /// <param name="refusal">Why the operation was refused.</param>
    /// <param name="message">One sentence naming the version and what to do.</param>
    public SpaceVersionException(SpaceVersionRefusal refusal, string message) : base(message) => Refusal = refusal;

    /// <summary>Why the operation was refused.</summary>
    public SpaceVersionRefusal Refusal { get; }
}
