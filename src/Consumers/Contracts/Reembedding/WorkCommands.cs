namespace FreeBind.Consumers.Contracts.Reembedding;

// What the saga asks of the workers. Each is idempotent: a redelivery repeats the same work with
// the same result, and the saga accepts each answer once.

/// <summary>Compute the run's plan: what changed against the active version and how each item will be rebuilt.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Space">Space name.</param>
/// <param name="TargetDigest">The version to build.</param>
public sealed record PlanReembedding(Guid RunId, string Space, string TargetDigest);

/// <summary>Cut the next <paramref name="MaxBatches"/> keyset batches of media ids after <paramref name="After"/> and send them as <see cref="BackfillBatch"/>.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Space">Space name.</param>
/// <param name="TargetDigest">The version being built.</param>
/// <param name="After">Last media id already dispatched; null from the start.</param>
/// <param name="FirstSequence">Sequence number of the first batch cut.</param>
/// <param name="MaxBatches">How many batches at most.</param>
/// <param name="BatchSize">Media ids per batch.</param>
public sealed record DispatchBackfill(Guid RunId, string Space, string TargetDigest, string? After, long FirstSequence, int MaxBatches, int BatchSize);

/// <summary>One batch of a backfill: the media ids in (<paramref name="After"/>, <paramref name="Last"/>], handled by any backfill worker.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Space">Space name.</param>
/// <param name="TargetDigest">The version being built.</param>
/// <param name="Sequence">The batch's number in the run.</param>
/// <param name="After">Exclusive lower bound (null: from the first id).</param>
/// <param name="Last">Inclusive upper bound.</param>
public sealed record BackfillBatch(Guid RunId, string Space, string TargetDigest, long Sequence, string? After, string Last);

/// <summary>Check the built version: coverage, a recomputed sample, index recall, drift against the active version.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Space">Space name.</param>
/// <param name="TargetDigest">The version built.</param>
/// <param name="SampleSize">Items recomputed from content end to end.</param>
public sealed record VerifyReembedding(Guid RunId, string Space, string TargetDigest, int SampleSize);

/// <summary>Make the run's version the active one, in one transaction.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Space">Space name.</param>
/// <param name="TargetDigest">The version to activate.</param>
public sealed record ActivateVersion(Guid RunId, string Space, string TargetDigest);

/// <summary>Drop the run's building version (cancel), leaving the active version untouched.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Space">Space name.</param>
/// <param name="TargetDigest">The building version.</param>
public sealed record DropVersion(Guid RunId, string Space, string TargetDigest);

/// <summary>Re-activate the version the run replaced.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Space">Space name.</param>
/// <param name="TargetDigest">The run's (now active) version.</param>
/// <param name="PreviousDigest">The version to re-activate.</param>
public sealed record RestoreVersion(Guid RunId, string Space, string TargetDigest, string PreviousDigest);
