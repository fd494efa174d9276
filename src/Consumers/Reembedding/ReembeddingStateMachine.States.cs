using FreeBind.Consumers.Contracts.Reembedding;
using MassTransit;

namespace FreeBind.Consumers.Reembedding;

// The machine's vocabulary: its states and the events it reacts to (MassTransit fills these
// properties in; the transitions between them are in ReembeddingStateMachine.cs).
public sealed partial class ReembeddingStateMachine
{
    // ---- states (in the order a run passes them) ----

    /// <summary>Waiting for the plan.</summary>
    public State Planning { get; private set; } = null!;

    /// <summary>Batches are dispatched and written.</summary>
    public State Backfilling { get; private set; } = null!;

    /// <summary>No new batch is dispatched; batches in flight finish.</summary>
    public State Paused { get; private set; } = null!;

    /// <summary>The verify gate runs.</summary>
    public State Verifying { get; private set; } = null!;

    /// <summary>Verified; waiting for <c>reembed cutover</c>.</summary>
    public State Ready { get; private set; } = null!;

    /// <summary>The cut-over transaction is out.</summary>
    public State Activating { get; private set; } = null!;

    /// <summary>The run's version is active (a rollback may still follow while the previous one is retained).</summary>
    public State Active { get; private set; } = null!;

    /// <summary>The building version is being dropped after a cancel.</summary>
    public State Cancelling { get; private set; } = null!;

    /// <summary>Cancelled: the building version is gone, the active one untouched.</summary>
    public State Cancelled { get; private set; } = null!;

    /// <summary>The building version is being dropped after a failure.</summary>
    public State Failing { get; private set; } = null!;

    /// <summary>Failed with a reason; the building version is gone.</summary>
    public State Failed { get; private set; } = null!;

    /// <summary>Not started: another run of the space was in progress.</summary>
    public State Refused { get; private set; } = null!;

    /// <summary>The previous version is being re-activated.</summary>
    public State RollingBack { get; private set; } = null!;

    /// <summary>The previous version is active again.</summary>
    public State RolledBack { get; private set; } = null!;

    // ---- events ----

    /// <summary>An operator starts the run.</summary>
    public Event<StartReembedding> Start { get; private set; } = null!;

    /// <summary>A version was published (starts a run when Reembedding:StartOnPublish).</summary>
    public Event<SpaceVersionPublished> Published { get; private set; } = null!;

    /// <summary>The plan arrived.</summary>
    public Event<ReembeddingPlanned> Planned { get; private set; } = null!;

    /// <summary>A window of batches was cut.</summary>
    public Event<BackfillDispatched> Dispatched { get; private set; } = null!;

    /// <summary>A batch was written.</summary>
    public Event<BackfillBatchCompleted> BatchCompleted { get; private set; } = null!;

    /// <summary>The verify gate answered.</summary>
    public Event<ReembeddingVerified> Verified { get; private set; } = null!;

    /// <summary>The version is active.</summary>
    public Event<VersionActivated> Activated { get; private set; } = null!;

    /// <summary>The building version is gone.</summary>
    public Event<VersionDropped> Dropped { get; private set; } = null!;

    /// <summary>The previous version is active again.</summary>
    public Event<VersionRestored> Restored { get; private set; } = null!;

    /// <summary>A step cannot be carried out.</summary>
    public Event<ReembeddingStepFailed> StepFailed { get; private set; } = null!;

    /// <summary>An operator pauses.</summary>
    public Event<PauseReembedding> Pause { get; private set; } = null!;

    /// <summary>An operator resumes.</summary>
    public Event<ResumeReembedding> Resume { get; private set; } = null!;

    /// <summary>An operator cancels.</summary>
    public Event<CancelReembedding> Cancel { get; private set; } = null!;

    /// <summary>An operator cuts over.</summary>
    public Event<CutOverReembedding> CutOver { get; private set; } = null!;

    /// <summary>An operator rolls back.</summary>
    public Event<RollbackReembedding> Rollback { get; private set; } = null!;

    /// <summary>The watchdog nudges.</summary>
    public Event<ReembeddingTick> Tick { get; private set; } = null!;

    /// <summary>The plan step failed after its retries.</summary>
    public Event<Fault<PlanReembedding>> PlanFaulted { get; private set; } = null!;

    /// <summary>A dispatch failed after its retries.</summary>
    public Event<Fault<DispatchBackfill>> DispatchFaulted { get; private set; } = null!;

    /// <summary>A backfill batch failed after its retries.</summary>
    public Event<Fault<BackfillBatch>> BatchFaulted { get; private set; } = null!;

    /// <summary>The verify gate failed after its retries.</summary>
    public Event<Fault<VerifyReembedding>> VerifyFaulted { get; private set; } = null!;

    /// <summary>The cut-over failed after its retries.</summary>
    public Event<Fault<ActivateVersion>> ActivateFaulted { get; private set; } = null!;

    /// <summary>The rollback failed after its retries.</summary>
    public Event<Fault<RestoreVersion>> RestoreFaulted { get; private set; } = null!;

    /// <summary>States in which a run is over (its space is free again).</summary>
    public static IReadOnlyList<string> FinalStates { get; } = ["Active", "Cancelled", "Failed", "Refused", "RolledBack"];
}
