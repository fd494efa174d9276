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
                c.Saga.RecordPlan(c.Message);
                await c.TransitionToState(Backfilling);
                await AdvanceBackfillAsync(c);
            }),
            When(Tick).ThenAsync(c => c.Publish(new PlanReembedding(c.Saga.CorrelationId, c.Saga.Space, c.Saga.TargetDigest))));

        During(Backfilling,
            When(Dispatched).ThenAsync(async c =>
            {
                c.Saga.RecordDispatch(c.Message);
                await AdvanceBackfillAsync(c);
            }),
            When(BatchCompleted).ThenAsync(async c =>
            {
                c.Saga.RecordBatch(c.Message);
                await AdvanceBackfillAsync(c);
            }),
            When(Pause).Then(c => c.Saga.StopClock()).TransitionTo(Paused),
            When(Tick).ThenAsync(async c =>
            {
                if (c.Saga.DispatchPending)
                    await c.Publish(DispatchCommand(c.Saga));
                await AdvanceBackfillAsync(c);
            }));

        During(Paused,
            When(Dispatched).Then(c => c.Saga.RecordDispatch(c.Message)),
            When(BatchCompleted).Then(c => c.Saga.RecordBatch(c.Message)),
            When(Resume).ThenAsync(async c =>
            {
                c.Saga.ResumeClock();
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
            When(Activated).Then(c => c.Saga.End()).TransitionTo(Active),
            // A refused cut-over leaves the run ready, with the reason, for the operator to act on.
            When(StepFailed).Then(c => c.Saga.Reason = $"{c.Message.Step}: {c.Message.Reason}").TransitionTo(Ready),
            When(ActivateFaulted).Then(c => c.Saga.Reason = "cut-over: " + FaultReason(c.Message)).TransitionTo(Ready),
            When(Tick).ThenAsync(c => c.Publish(new ActivateVersion(c.Saga.CorrelationId, c.Saga.Space, c.Saga.TargetDigest))));

        During(Active,
            When(Rollback, c => c.Saga.PreviousDigest is not null)
                .Then(c => c.Saga.Touch())
                .TransitionTo(RollingBack)
                .ThenAsync(c => c.Publish(RestoreCommand(c.Saga))));

        During(RollingBack,
            When(Restored).Then(c => c.Saga.End()).TransitionTo(RolledBack),
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
            When(Dropped).Then(c => c.Saga.End()).TransitionTo(Cancelled),
            When(Tick).ThenAsync(c => c.Publish(new DropVersion(c.Saga.CorrelationId, c.Saga.Space, c.Saga.TargetDigest))));

        During(Failing,
            When(Dropped).Then(c => c.Saga.End()).TransitionTo(Failed),
            When(Tick).ThenAsync(c => c.Publish(new DropVersion(c.Saga.CorrelationId, c.Saga.Space, c.Saga.TargetDigest))));

        // A run that started again (same id) must not be confused by a duplicate of its own start.
        During([Planning, Backfilling, Paused, Verifying, Ready, Activating, Active, Cancelling, Failing, RollingBack, RolledBack],
            Ignore(Start),
            Ignore(Published));
    }

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
        run.Begin(space, digest, autoCutover, requestedBy);

        var store = context.GetServiceOrCreateInstance<SagaStore<ReembeddingRun>>();
        if (await store.FindByKeyAsync(space, context.CancellationToken) is { } holder && holder.CorrelationId != run.CorrelationId)
        {
            run.ExclusiveKey = null;
            run.Reason = $"run {holder.CorrelationId} of space '{space}' is {holder.CurrentState.ToLowerInvariant()}; cancel it or wait for it to end";
            run.FinishedAt = run.UpdatedAt;
            await context.TransitionToState(Refused);
            return;
        }
        // Taking the key is what makes the refusal race-free: of two starts that both saw the space
        // free, the second insert fails on the unique key, is retried, and is refused above.
        run.ExclusiveKey = space;
        await context.TransitionToState(Planning);
        await context.Publish(new PlanReembedding(run.CorrelationId, space, digest));
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
            run.StopClock();
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
        context.Saga.Touch();
        await context.TransitionToState(Activating);
        await context.Publish(new ActivateVersion(context.Saga.CorrelationId, context.Saga.Space, context.Saga.TargetDigest));
    }

    private Task FailAsync(BehaviorContext<ReembeddingRun> context, string reason) => DropAsync(context, Failing, reason);

    private static async Task DropAsync(BehaviorContext<ReembeddingRun> context, State next, string reason)
    {
        var run = context.Saga;
        run.StopClock();
        run.Reason = reason;
        run.Touch();
        await context.TransitionToState(next);
        await context.Publish(new DropVersion(run.CorrelationId, run.Space, run.TargetDigest));
    }

    private static string FaultReason<T>(Fault<T> fault) =>
        fault.Exceptions.FirstOrDefault()?.Message.Split('\n')[0] ?? "the worker gave no reason";

    [LoggerMessage(Level = LogLevel.Debug, Message = "Ignored {Event} for run {RunId} in state {State}")]
    private static partial void LogIgnored(ILogger logger, string @event, Guid runId, string state);
}
