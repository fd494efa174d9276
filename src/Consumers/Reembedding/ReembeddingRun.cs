using System.Text.Json.Serialization;
using FreeBind.Persistence.Sagas;
using MassTransit;

namespace FreeBind.Consumers.Reembedding;

/// <summary>
/// One re-embedding run: the saga state <see cref="ReembeddingStateMachine"/> moves and the
/// Postgres saga store keeps (table <c>reembedding_runs</c>). Progress lives here, so
/// <c>freebind reembed status</c> reads one row.
/// </summary>
public sealed class ReembeddingRun : SagaStateMachineInstance, IStoredSaga
{
    /// <summary>The run id (<c>RunIds.For(Space, TargetDigest)</c>).</summary>
    public Guid CorrelationId { get; set; }

    /// <inheritdoc />
    public int Version { get; set; }

    /// <inheritdoc />
    public string CurrentState { get; set; } = "";

    /// <inheritdoc />
    public string? ExclusiveKey { get; set; }

    /// <summary>Space name.</summary>
    public string Space { get; set; } = "";

    /// <summary>The version being built.</summary>
    public string TargetDigest { get; set; } = "";

    /// <summary>The active version when the run was planned (what a rollback restores); null when the space had none.</summary>
    public string? PreviousDigest { get; set; }

    /// <summary>Activate as soon as the verify gate passes.</summary>
    public bool AutoCutover { get; set; }

    /// <summary>Who started the run (<c>cli</c>, <c>publish</c>).</summary>
    public string RequestedBy { get; set; } = "";

    /// <summary>When the run was (re)started.</summary>
    public DateTimeOffset StartedAt { get; set; }

    /// <summary>Last change of this state.</summary>
    public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>When the run reached a final state.</summary>
    public DateTimeOffset? FinishedAt { get; set; }

    // ---- the plan ----

    /// <summary>Live items the new version must hold.</summary>
    public long Items { get; set; }

    /// <summary>Items rebuilt from stored atoms alone.</summary>
    public long Refuse { get; set; }

    /// <summary>Items that need an expert re-encoded, per expert.</summary>
    public Dictionary<string, long> ReencodeByExpert { get; set; } = [];

    /// <summary>Items whose content cannot be fetched again, per reason.</summary>
    public Dictionary<string, long> NotRetrievableByReason { get; set; } = [];

    /// <summary>What changed against the active version.</summary>
    public List<string> Changes { get; set; } = [];

    // ---- the backfill ----

    /// <summary>Last media id dispatched (keyset cursor).</summary>
    public string? Cursor { get; set; }

    /// <summary>Sequence number the next dispatched batch gets (= batches dispatched so far).</summary>
    public long NextSequence { get; set; }

    /// <summary>A <c>DispatchBackfill</c> is out and not yet answered.</summary>
    public bool DispatchPending { get; set; }

    /// <summary>The dispatcher found no media id after <see cref="Cursor"/>.</summary>
    public bool DispatchExhausted { get; set; }

    /// <summary>Batches completed, each counted once however often it is redelivered.</summary>
    public SortedSet<long> CompletedBatches { get; set; } = [];

    /// <summary>Items written in the new version.</summary>
    public long Done { get; set; }

    /// <summary>Items that could not be rebuilt, per reason.</summary>
    public Dictionary<string, long> FailedByReason { get; set; } = [];

    /// <summary>Seconds spent backfilling (paused time excluded), up to <see cref="BackfillResumedAt"/>.</summary>
    public double BackfillSeconds { get; set; }

    /// <summary>When backfilling last (re)started; null while not backfilling.</summary>
    public DateTimeOffset? BackfillResumedAt { get; set; }

    // ---- verify, cut-over, endings ----

    /// <summary>The verify gate's findings, one line each.</summary>
    public List<string> Findings { get; set; } = [];

    /// <summary>The drift report, one line per modality.</summary>
    public List<string> Drift { get; set; } = [];

    /// <summary>Why the run failed, was refused or cancelled.</summary>
    public string? Reason { get; set; }

    /// <summary>Batches dispatched and not yet completed.</summary>
    [JsonIgnore]
    public long Outstanding => NextSequence - CompletedBatches.Count(s => s < NextSequence);

    /// <summary>Items per second while backfilling, at <paramref name="now"/>.</summary>
    /// <param name="now">The time to measure at.</param>
    public double Rate(DateTimeOffset now)
    {
        var seconds = BackfillSeconds + (BackfillResumedAt is { } resumed ? (now - resumed).TotalSeconds : 0);
        return seconds > 0 ? Done / seconds : 0;
    }
}
