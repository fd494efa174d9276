using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Persistence.Sagas;
using MassTransit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Reembedding;

/// <summary>
/// A re-embedding run: planning → backfilling (keyset batches handled by competing workers) →
/// verifying → ready → activating → active, with paused, cancelling → cancelled, failed, refused
/// and rolling back → rolled back. Every event is correlated by the run id; every answer is
/// accepted once, so redeliveries change nothing. The saga does no work itself: it publishes
/// commands (contracts in FreeBind.Consumers.Contracts.Reembedding) and records their answers.
/// A run holds its space (the stored exclusive key) from start to its end, so a second run of the
/// same space is refused, even when two starts race.
/// </summary>
public sealed partial class ReembeddingStateMachine : MassTransitStateMachine<ReembeddingRun>
{
    private readonly ReembeddingOptions _options;

    /// <summary>Builds the machine.</summary>
    /// <param name="options">Batch size, window, verify sample, start-on-publish.</param>
    /// <param name="logger">Logs ignored events.</param>
    public ReembeddingStateMachine(IOptions<ReembeddingOptions> options, ILogger<ReembeddingStateMachine> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        InstanceState(x => x.CurrentState);

        Event(() => Start, e => e.CorrelateById(m => m.Message.RunId));
        Event(() => Published, e => e.CorrelateById(m => RunIds.For(m.Message.Space, m.Message.Digest)));
        Event(() => Planned, e => Existing(e, m => m.Message.RunId));
        Event(() => Dispatched, e => Existing(e, m => m.Message.RunId));
        Event(() => BatchCompleted, e => Existing(e, m => m.Message.RunId));
        Event(() => Verified, e => Existing(e, m => m.Message.RunId));
        Event(() => Activated, e => Existing(e, m => m.Message.RunId));
        Event(() => Dropped, e => Existing(e, m => m.Message.RunId));
        Event(() => Restored, e => Existing(e, m => m.Message.RunId));
        Event(() => StepFailed, e => Existing(e, m => m.Message.RunId));
        Event(() => Pause, e => Existing(e, m => m.Message.RunId));
        Event(() => Resume, e => Existing(e, m => m.Message.RunId));
        Event(() => Cancel, e => Existing(e, m => m.Message.RunId));
        Event(() => CutOver, e => Existing(e, m => m.Message.RunId));
        Event(() => Rollback, e => Existing(e, m => m.Message.RunId));
        Event(() => Tick, e => Existing(e, m => m.Message.RunId));
        Event(() => PlanFaulted, e => Existing(e, m => m.Message.Message.RunId));
        Event(() => DispatchFaulted, e => Existing(e, m => m.Message.Message.RunId));
        Event(() => BatchFaulted, e => Existing(e, m => m.Message.Message.RunId));
        Event(() => VerifyFaulted, e => Existing(e, m => m.Message.Message.RunId));
        Event(() => ActivateFaulted, e => Existing(e, m => m.Message.Message.RunId));
        Event(() => RestoreFaulted, e => Existing(e, m => m.Message.Message.RunId));

        // Duplicates and late answers (a batch finishing after a cancel, a second cut-over) are
        // expected in a redelivering system: they change nothing and are not errors.
        OnUnhandledEvent(context =>
        {
            LogIgnored(logger, context.Event.Name, context.Saga.CorrelationId, context.Saga.CurrentState);
            return context.Ignore();
        });

        Initially(
            When(Start).ThenAsync(c => BeginAsync(c, c.Message.Space, c.Message.TargetDigest, c.Message.AutoCutover, c.Message.RequestedBy)),
            When(Published, c => _options.StartOnPublish)
                .ThenAsync(c => BeginAsync(c, c.Message.Space, c.Message.Digest, autoCutover: false, "publish")));

        // The same run started again after it ended badly starts over (its version is rebuilt).
        During(Refused, Cancelled, Failed,
            When(Start).ThenAsync(c => BeginAsync(c, c.Message.Space, c.Message.TargetDigest, c.Message.AutoCutover, c.Message.RequestedBy)));

        During(Planning,
            When(Planned).ThenAsync(async c =>
            {
                var run = c.Saga;
                var plan = c.Message;
                run.PreviousDigest = plan.PreviousDigest;
                run.Items = plan.Items;
                run.Refuse = plan.Refuse;
                run.ReencodeByExpert = new(plan.ReencodeByExpert);
                run.NotRetrievableByReason = new(plan.NotRetrievableByReason);
                run.Changes = [.. plan.Changes];
                run.BackfillResumedAt = Now(run);
                await c.TransitionToState(Backfilling);
                await AdvanceBackfillAsync(c);
            }),
            When(Tick).ThenAsync(c => c.Publish(new PlanReembedding(c.Saga.CorrelationId, c.Saga.Space, c.Saga.TargetDigest))));

        During(Backfilling,
            When(Dispatched).ThenAsync(async c =>
            {
                RecordDispatch(c.Saga, c.Message);
                await AdvanceBackfillAsync(c);
            }),
            When(BatchCompleted).ThenAsync(async c =>
            {
                RecordBatch(c.Saga, c.Message);
                await AdvanceBackfillAsync(c);
            }),
            When(Pause).Then(c => StopClock(c.Saga)).TransitionTo(Paused),
            When(Tick).ThenAsync(async c =>
            {
                if (c.Saga.DispatchPending)
                    await c.Publish(DispatchCommand(c.Saga));
                await AdvanceBackfillAsync(c);
            }));

        During(Paused,
            When(Dispatched).Then(c => RecordDispatch(c.Saga, c.Message)),
            When(BatchCompleted).Then(c => RecordBatch(c.Saga, c.Message)),
            When(Resume).ThenAsync(async c =>
            {
                c.Saga.BackfillResumedAt = Now(c.Saga);
                await c.TransitionToState(Backfilling);
                await AdvanceBackfillAsync(c);
            }),
            Ignore(Pause),
            Ignore(Tick));

        During(Verifying,
            When(Verified).ThenAsync(async c =>
            {
                var run = c.Saga;
                run.Findings = [.. c.Message.Findings];
                run.Drift = [.. c.Message.Drift];
                if (!c.Message.Passed)
                {
                    await FailAsync(c, "the verify gate failed: " + (c.Message.Findings.FirstOrDefault() ?? "no finding given"));
                    return;
                }
                if (run.AutoCutover)
                    await ActivateAsync(c);
                else
                    await c.TransitionToState(Ready);
            }),
            When(Tick).ThenAsync(c => c.Publish(VerifyCommand(c.Saga))));

        During(Ready,
            When(CutOver).ThenAsync(ActivateAsync));

        During(Activating,
            When(Activated).Then(c => End(c.Saga)).TransitionTo(Active),
            // A refused cut-over leaves the run ready, with the reason, for the operator to act on.
            When(StepFailed).Then(c => c.Saga.Reason = $"{c.Message.Step}: {c.Message.Reason}").TransitionTo(Ready),
            When(ActivateFaulted).Then(c => c.Saga.Reason = "cut-over: " + FaultReason(c.Message)).TransitionTo(Ready),
            When(Tick).ThenAsync(c => c.Publish(new ActivateVersion(c.Saga.CorrelationId, c.Saga.Space, c.Saga.TargetDigest))));

        During(Active,
            When(Rollback, c => c.Saga.PreviousDigest is not null)
                .Then(c => c.Saga.UpdatedAt = Now(c.Saga))
                .TransitionTo(RollingBack)
                .ThenAsync(c => c.Publish(RestoreCommand(c.Saga))));

        During(RollingBack,
            When(Restored).Then(c => End(c.Saga)).TransitionTo(RolledBack),
            When(StepFailed).Then(c => c.Saga.Reason = $"{c.Message.Step}: {c.Message.Reason}").TransitionTo(Active),
            When(RestoreFaulted).Then(c => c.Saga.Reason = "rollback: " + FaultReason(c.Message)).TransitionTo(Active),
            When(Tick).ThenAsync(c => c.Publish(RestoreCommand(c.Saga))));

        During([Planning, Backfilling, Paused, Verifying, Ready],
            When(Cancel).ThenAsync(c => DropAsync(c, Cancelling, c.Message.Reason)),
            When(StepFailed).ThenAsync(c => FailAsync(c, $"{c.Message.Step}: {c.Message.Reason}")),
            // A worker step that still failed after its retries: the run cannot wait for its answer.
            When(PlanFaulted).ThenAsync(c => FailAsync(c, "plan: " + FaultReason(c.Message))),
            When(DispatchFaulted).ThenAsync(c => FailAsync(c, "dispatch: " + FaultReason(c.Message))),
            When(BatchFaulted).ThenAsync(c => FailAsync(c, $"backfill batch {c.Message.Message.Sequence}: " + FaultReason(c.Message))),
            When(VerifyFaulted).ThenAsync(c => FailAsync(c, "verify: " + FaultReason(c.Message))));

        During(Cancelling,
            When(Dropped).Then(c => End(c.Saga)).TransitionTo(Cancelled),
            When(Tick).ThenAsync(c => c.Publish(new DropVersion(c.Saga.CorrelationId, c.Saga.Space, c.Saga.TargetDigest))));

        During(Failing,
            When(Dropped).Then(c => End(c.Saga)).TransitionTo(Failed),
            When(Tick).ThenAsync(c => c.Publish(new DropVersion(c.Saga.CorrelationId, c.Saga.Space, c.Saga.TargetDigest))));

        // A run that started again (same id) must not be confused by a duplicate of its own start.
        During([Planning, Backfilling, Paused, Verifying, Ready, Activating, Active, Cancelling, Failing, RollingBack, RolledBack],
            Ignore(Start),
            Ignore(Published));
    }

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

    // ---- steps ----

    private static void Existing<T>(IEventCorrelationConfigurator<ReembeddingRun, T> e, Func<ConsumeContext<T>, Guid> id)
        where T : class
    {
        e.CorrelateById(id);
        // A message for a run that does not exist (a stale nudge, a typo'd id) is dropped, not faulted.
        e.OnMissingInstance(m => m.Discard());
    }

    private async Task BeginAsync<T>(BehaviorContext<ReembeddingRun, T> context, string space, string digest, bool autoCutover, string requestedBy)
        where T : class
    {
        var run = context.Saga;
        var now = DateTimeOffset.UtcNow;
        run.Space = space;
        run.TargetDigest = digest;
        run.AutoCutover = autoCutover;
        run.RequestedBy = requestedBy;
        run.StartedAt = now;
        run.UpdatedAt = now;
        Reset(run);

        var store = context.GetServiceOrCreateInstance<SagaStore<ReembeddingRun>>();
        if (await store.FindByKeyAsync(space, context.CancellationToken) is { } holder && holder.CorrelationId != run.CorrelationId)
        {
            run.ExclusiveKey = null;
            run.Reason = $"run {holder.CorrelationId} of space '{space}' is {holder.CurrentState.ToLowerInvariant()}; cancel it or wait for it to end";
            run.FinishedAt = now;
            await context.TransitionToState(Refused);
            return;
        }
        // Taking the key is what makes the refusal race-free: of two starts that both saw the space
        // free, the second insert fails on the unique key, is retried, and is refused above.
        run.ExclusiveKey = space;
        await context.TransitionToState(Planning);
        await context.Publish(new PlanReembedding(run.CorrelationId, space, digest));
    }

    private static void Reset(ReembeddingRun run)
    {
        run.FinishedAt = null;
        run.Reason = null;
        run.PreviousDigest = null;
        run.Items = run.Refuse = run.Done = 0;
        run.ReencodeByExpert = [];
        run.NotRetrievableByReason = [];
        run.Changes = [];
        run.Cursor = null;
        run.NextSequence = 0;
        run.DispatchPending = run.DispatchExhausted = false;
        run.CompletedBatches = [];
        run.FailedByReason = [];
        run.BackfillSeconds = 0;
        run.BackfillResumedAt = null;
        run.Findings = [];
        run.Drift = [];
    }

    // Answers to an older dispatch (a redelivery, or the one a nudge repeated) are dropped.
    private static void RecordDispatch(ReembeddingRun run, BackfillDispatched message)
    {
        if (!run.DispatchPending || message.FirstSequence != run.NextSequence) return;
        run.NextSequence += message.Count;
        run.Cursor = message.Last ?? run.Cursor;
        run.DispatchExhausted = message.Exhausted;
        run.DispatchPending = false;
        run.UpdatedAt = Now(run);
    }

    private static void RecordBatch(ReembeddingRun run, BackfillBatchCompleted message)
    {
        if (!run.CompletedBatches.Add(message.Sequence)) return;
        run.Done += message.Done;
        foreach (var (reason, count) in message.FailedByReason)
            run.FailedByReason[reason] = run.FailedByReason.GetValueOrDefault(reason) + count;
        run.UpdatedAt = Now(run);
    }

    // Keeps a window of batches ahead of the workers; once every batch of an exhausted key range is
    // written, the run moves on to the verify gate.
    private async Task AdvanceBackfillAsync(BehaviorContext<ReembeddingRun> context)
    {
        var run = context.Saga;
        if (run.DispatchPending) return;
        if (run.DispatchExhausted)
        {
            if (run.Outstanding > 0) return;
            StopClock(run);
            await context.TransitionToState(Verifying);
            await context.Publish(VerifyCommand(run));
            return;
        }
        if (run.Outstanding > _options.WindowBatches / 2) return;
        run.DispatchPending = true;
        await context.Publish(DispatchCommand(run));
    }

    private DispatchBackfill DispatchCommand(ReembeddingRun run) =>
        new(run.CorrelationId, run.Space, run.TargetDigest, run.Cursor, run.NextSequence, _options.WindowBatches, _options.BatchSize);

    private VerifyReembedding VerifyCommand(ReembeddingRun run) => new(run.CorrelationId, run.Space, run.TargetDigest, _options.VerifySampleSize);

    private static RestoreVersion RestoreCommand(ReembeddingRun run) => new(run.CorrelationId, run.Space, run.TargetDigest, run.PreviousDigest!);

    private async Task ActivateAsync(BehaviorContext<ReembeddingRun> context)
    {
        context.Saga.UpdatedAt = Now(context.Saga);
        await context.TransitionToState(Activating);
        await context.Publish(new ActivateVersion(context.Saga.CorrelationId, context.Saga.Space, context.Saga.TargetDigest));
    }

    private Task FailAsync(BehaviorContext<ReembeddingRun> context, string reason) => DropAsync(context, Failing, reason);

    private static async Task DropAsync(BehaviorContext<ReembeddingRun> context, State next, string reason)
    {
        var run = context.Saga;
        StopClock(run);
        run.Reason = reason;
        run.UpdatedAt = Now(run);
        await context.TransitionToState(next);
        await context.Publish(new DropVersion(run.CorrelationId, run.Space, run.TargetDigest));
    }

    private static void StopClock(ReembeddingRun run)
    {
        if (run.BackfillResumedAt is { } resumed)
            run.BackfillSeconds += (DateTimeOffset.UtcNow - resumed).TotalSeconds;
        run.BackfillResumedAt = null;
    }

    private static void End(ReembeddingRun run)
    {
        run.ExclusiveKey = null;
        run.FinishedAt = run.UpdatedAt = DateTimeOffset.UtcNow;
    }

    private static string FaultReason<T>(Fault<T> fault) =>
        fault.Exceptions.FirstOrDefault()?.Message.Split('\n')[0] ?? "the worker gave no reason";

    private static DateTimeOffset Now(ReembeddingRun run) => run.UpdatedAt = DateTimeOffset.UtcNow;

    [LoggerMessage(Level = LogLevel.Debug, Message = "Ignored {Event} for run {RunId} in state {State}")]
    private static partial void LogIgnored(ILogger logger, string @event, Guid runId, string state);
}
