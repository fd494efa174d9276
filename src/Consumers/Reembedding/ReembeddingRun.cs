using System.Text.Json.Serialization;
using FreeBind.Consumers.Contracts.Reembedding;
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

    // ---- how the machine records a run's answers (each accepted once: redeliveries change nothing) ----

    /// <summary>Starts the run (again, after it ended badly): every figure of an earlier attempt is cleared.</summary>
    /// <param name="space">Space name.</param>
    /// <param name="digest">The version to build.</param>
    /// <param name="autoCutover">Activate as soon as the verify gate passes.</param>
    /// <param name="requestedBy">Who started it.</param>
    public void Begin(string space, string digest, bool autoCutover, string requestedBy)
    {
        Space = space;
        TargetDigest = digest;
        AutoCutover = autoCutover;
        RequestedBy = requestedBy;
        StartedAt = Touch();
        FinishedAt = null;
        Reason = null;
        PreviousDigest = null;
        Items = Refuse = Done = 0;
        ReencodeByExpert = [];
        NotRetrievableByReason = [];
        Changes = [];
        Cursor = null;
        NextSequence = 0;
        DispatchPending = DispatchExhausted = false;
        CompletedBatches = [];
        FailedByReason = [];
        BackfillSeconds = 0;
        BackfillResumedAt = null;
        Findings = [];
        Drift = [];
    }

    /// <summary>Records the plan and starts the backfill clock.</summary>
    /// <param name="plan">The planner's answer.</param>
    public void RecordPlan(ReembeddingPlanned plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        PreviousDigest = plan.PreviousDigest;
        Items = plan.Items;
        Refuse = plan.Refuse;
        ReencodeByExpert = new(plan.ReencodeByExpert);
        NotRetrievableByReason = new(plan.NotRetrievableByReason);
        Changes = [.. plan.Changes];
        ResumeClock();
    }

    /// <summary>Records a dispatch; answers to an older one (a redelivery, or the one a nudge repeated) are dropped.</summary>
    /// <param name="message">The dispatcher's answer.</param>
    public void RecordDispatch(BackfillDispatched message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (!DispatchPending || message.FirstSequence != NextSequence) return;
        NextSequence += message.Count;
        Cursor = message.Last ?? Cursor;
        DispatchExhausted = message.Exhausted;
        DispatchPending = false;
        Touch();
    }

    /// <summary>Records a written batch once.</summary>
    /// <param name="message">The worker's answer.</param>
    public void RecordBatch(BackfillBatchCompleted message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (!CompletedBatches.Add(message.Sequence)) return;
        Done += message.Done;
        foreach (var (reason, count) in message.FailedByReason)
            FailedByReason[reason] = FailedByReason.GetValueOrDefault(reason) + count;
        Touch();
    }

    /// <summary>The backfill clock runs (again): only time spent backfilling counts towards the rate.</summary>
    public void ResumeClock() => BackfillResumedAt = Touch();

    /// <summary>The backfill clock stops (pause, verify, cancel, failure).</summary>
    public void StopClock()
    {
        if (BackfillResumedAt is { } resumed)
            BackfillSeconds += (DateTimeOffset.UtcNow - resumed).TotalSeconds;
        BackfillResumedAt = null;
    }

    /// <summary>The run has ended: its space is free for the next run.</summary>
    public void End()
    {
        ExclusiveKey = null;
        FinishedAt = Touch();
    }

    /// <summary>Marks the run updated now.</summary>
    /// <returns>The time set.</returns>
    public DateTimeOffset Touch() => UpdatedAt = DateTimeOffset.UtcNow;

    /// <summary>Items per second while backfilling, at <paramref name="now"/>.</summary>
    /// <param name="now">The time to measure at.</param>
    public double Rate(DateTimeOffset now)
    {
        var seconds = BackfillSeconds + (BackfillResumedAt is { } resumed ? (now - resumed).TotalSeconds : 0);
        return seconds > 0 ? Done / seconds : 0;
    }
}
