namespace FreeBind.Consumers.Contracts.Reembedding;

// What operators (the `freebind reembed` and `spaces publish` commands) send to the re-embedding saga.
// Every message names its run; RunIds.For derives a run's id from its space and target version,
// so a repeated start of the same change is the same run, not a second one.

/// <summary>A new version of a space was registered (<c>freebind spaces publish</c>); the saga starts a run from it when Reembedding:StartOnPublish is on.</summary>
/// <param name="Space">Space name.</param>
/// <param name="Digest">The new version's digest (<c>sha256:…</c>).</param>
/// <param name="PublishedAt">When it was registered.</param>
public sealed record SpaceVersionPublished(string Space, string Digest, DateTimeOffset PublishedAt);

/// <summary>Start (or, repeated, confirm) the run that re-embeds <paramref name="Space"/> into version <paramref name="TargetDigest"/>.</summary>
/// <param name="RunId">Equals <c>RunIds.For(Space, TargetDigest)</c>.</param>
/// <param name="Space">Space name.</param>
/// <param name="TargetDigest">The version to build (registered, state building).</param>
/// <param name="AutoCutover">Activate the new version as soon as the verify gate passes.</param>
/// <param name="RequestedBy">Who asked (<c>cli</c>, <c>publish</c>), for the run's history.</param>
public sealed record StartReembedding(Guid RunId, string Space, string TargetDigest, bool AutoCutover, string RequestedBy);

/// <summary>Stop dispatching new backfill batches; batches in flight finish.</summary>
/// <param name="RunId">The run.</param>
public sealed record PauseReembedding(Guid RunId);

/// <summary>Continue a paused run where it stopped.</summary>
/// <param name="RunId">The run.</param>
public sealed record ResumeReembedding(Guid RunId);

/// <summary>Abandon the run: the building version is dropped, the active one is left untouched.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Reason">Why, for the run's history.</param>
public sealed record CancelReembedding(Guid RunId, string Reason);

/// <summary>Activate the run's version (only once the verify gate passed).</summary>
/// <param name="RunId">The run.</param>
public sealed record CutOverReembedding(Guid RunId);

/// <summary>Re-activate the version the run replaced, while it is retained.</summary>
/// <param name="RunId">The run whose cut-over is undone.</param>
public sealed record RollbackReembedding(Guid RunId);

/// <summary>A nudge from the saga host's watchdog: re-issue whatever the run waits for (its last command may have been lost in a crash).</summary>
/// <param name="RunId">The run.</param>
public sealed record ReembeddingTick(Guid RunId);
