namespace FreeBind.Consumers.Contracts.Reembedding;

/// <summary>The run's plan (answer to <see cref="PlanReembedding"/>).</summary>
/// <param name="RunId">The run.</param>
/// <param name="PreviousDigest">The active version the run replaces; null when the space has none.</param>
/// <param name="Items">Live items the new version must hold.</param>
/// <param name="Refuse">Items rebuilt from stored atoms alone (no encoder).</param>
/// <param name="ReencodeByExpert">Items whose atoms of an expert must be recomputed, per expert.</param>
/// <param name="NotRetrievableByReason">Items that need an encoder but whose content cannot be fetched again, per reason.</param>
/// <param name="Changes">What changed against the active version, one line each (factors, projector files, expert models per modality).</param>
public sealed record ReembeddingPlanned(
    Guid RunId, string? PreviousDigest, long Items, long Refuse,
    IReadOnlyDictionary<string, long> ReencodeByExpert, IReadOnlyDictionary<string, long> NotRetrievableByReason,
    IReadOnlyList<string> Changes);

/// <summary>Batches cut by a <see cref="DispatchBackfill"/>.</summary>
/// <param name="RunId">The run.</param>
/// <param name="FirstSequence">Echo of the command's first sequence number.</param>
/// <param name="Count">Batches sent (sequences FirstSequence … FirstSequence+Count−1).</param>
/// <param name="Last">Last media id covered; the next dispatch starts after it.</param>
/// <param name="Exhausted">No media id after <paramref name="Last"/> existed when the batches were cut.</param>
public sealed record BackfillDispatched(Guid RunId, long FirstSequence, int Count, string? Last, bool Exhausted);

/// <summary>A backfill batch was written.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Sequence">The batch.</param>
/// <param name="Done">Items written (or found already written) in the new version.</param>
/// <param name="FailedByReason">Items that could not be rebuilt, per reason.</param>
/// <param name="Elapsed">Time the batch took.</param>
public sealed record BackfillBatchCompleted(Guid RunId, long Sequence, int Done, IReadOnlyDictionary<string, int> FailedByReason, TimeSpan Elapsed);

/// <summary>The verify gate's verdict.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Passed">Coverage complete, sample within tolerance, recall at least the threshold.</param>
/// <param name="Findings">Each check's result in one line (failures first).</param>
/// <param name="Drift">Per modality: mean cosine old vs new and top-10 overlap, one line each.</param>
public sealed record ReembeddingVerified(Guid RunId, bool Passed, IReadOnlyList<string> Findings, IReadOnlyList<string> Drift);

/// <summary>The run's version is active.</summary>
/// <param name="RunId">The run.</param>
public sealed record VersionActivated(Guid RunId);

/// <summary>The run's building version is gone.</summary>
/// <param name="RunId">The run.</param>
public sealed record VersionDropped(Guid RunId);

/// <summary>The replaced version is active again.</summary>
/// <param name="RunId">The run.</param>
public sealed record VersionRestored(Guid RunId);

/// <summary>A worker cannot carry out the run's step at all (not a per-item failure).</summary>
/// <param name="RunId">The run.</param>
/// <param name="Step">The step (plan, dispatch, verify, activate, drop, restore).</param>
/// <param name="Reason">One sentence an operator can act on.</param>
public sealed record ReembeddingStepFailed(Guid RunId, string Step, string Reason);
