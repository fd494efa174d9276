using System.Collections.Concurrent;
using FreeBind.Consumers.Contracts.Reembedding;
using MassTransit;

namespace FreeBind.Tests.Reembedding;

/// <summary>
/// An archive of media ids and what the saga's workers did to it, for tests of the state machine
/// alone: the workers below answer each command as the real ones do (keyset batches over sorted
/// ids, idempotent writes), and answer every command twice, as a redelivering broker may.
/// </summary>
public sealed class ScriptedArchive
{
    public SortedSet<string> Ids { get; } = new(StringComparer.Ordinal);

    /// <summary>Writes per media id (a batch redelivered writes again; the saga must count it once).</summary>
    public ConcurrentDictionary<string, int> Written { get; } = new();

    public ConcurrentBag<string> Activated { get; } = [];

    public ConcurrentBag<string> Dropped { get; } = [];

    public ConcurrentBag<string> Restored { get; } = [];

    /// <summary>Spaces whose plan command is left unanswered (a run that stays in Planning).</summary>
    public ConcurrentDictionary<string, bool> HoldPlan { get; } = new();

    /// <summary>Time each batch takes (a run long enough to disturb).</summary>
    public TimeSpan BatchDelay { get; set; }

    /// <summary>Batches with a sequence in this set report one item failed with reason "content-gone".</summary>
    public ConcurrentDictionary<long, bool> FailOneIn { get; } = new();

    public static ScriptedArchive WithItems(int count)
    {
        var archive = new ScriptedArchive();
        for (var i = 0; i < count; i++) archive.Ids.Add($"m{i:D5}");
        return archive;
    }
}

public sealed class ScriptedWorkers(ScriptedArchive archive) :
    IConsumer<PlanReembedding>, IConsumer<DispatchBackfill>, IConsumer<BackfillBatch>, IConsumer<VerifyReembedding>,
    IConsumer<ActivateVersion>, IConsumer<DropVersion>, IConsumer<RestoreVersion>
{
    public async Task Consume(ConsumeContext<PlanReembedding> context)
    {
        if (archive.HoldPlan.ContainsKey(context.Message.Space)) return;
        var plan = new ReembeddingPlanned(context.Message.RunId, "sha256:previous", archive.Ids.Count, archive.Ids.Count,
            new Dictionary<string, long>(), new Dictionary<string, long>(), ["text factor 0.1 → 0.5"]);
        await Twice(() => context.Publish(plan));
    }

    public async Task Consume(ConsumeContext<DispatchBackfill> context)
    {
        var m = context.Message;
        var ids = (m.After is null ? archive.Ids : archive.Ids.GetViewBetween(m.After, archive.Ids.Max!).Where(id => id != m.After))
            .Take(m.MaxBatches * m.BatchSize).ToList();
        var batches = ids.Chunk(m.BatchSize).ToList();
        string? after = m.After;
        for (var i = 0; i < batches.Count; i++)
        {
            var batch = new BackfillBatch(m.RunId, m.Space, m.TargetDigest, m.FirstSequence + i, after, batches[i][^1]);
            await Twice(() => context.Publish(batch));
            after = batches[i][^1];
        }
        var exhausted = ids.Count == 0 || ids[^1] == archive.Ids.Max;
        await Twice(() => context.Publish(new BackfillDispatched(m.RunId, m.FirstSequence, batches.Count, ids.Count > 0 ? ids[^1] : m.After, exhausted)));
    }

    public async Task Consume(ConsumeContext<BackfillBatch> context)
    {
        var m = context.Message;
        if (archive.BatchDelay > TimeSpan.Zero) await Task.Delay(archive.BatchDelay);
        var ids = archive.Ids.Where(id => (m.After is null || string.CompareOrdinal(id, m.After) > 0) && string.CompareOrdinal(id, m.Last) <= 0).ToList();
        foreach (var id in ids) archive.Written.AddOrUpdate(id, 1, (_, n) => n + 1);
        var failed = archive.FailOneIn.ContainsKey(m.Sequence) ? new Dictionary<string, int> { ["content-gone"] = 1 } : [];
        var done = ids.Count - failed.Values.Sum();
        await Twice(() => context.Publish(new BackfillBatchCompleted(m.RunId, m.Sequence, done, failed, TimeSpan.FromMilliseconds(1))));
    }

    public Task Consume(ConsumeContext<VerifyReembedding> context)
    {
        var complete = archive.Ids.All(archive.Written.ContainsKey);
        return Twice(() => context.Publish(new ReembeddingVerified(context.Message.RunId, complete,
            [complete ? "coverage: every item has a row" : "coverage: items missing"], ["text: mean cosine 0.97, top-10 overlap 0.9"])));
    }

    public Task Consume(ConsumeContext<ActivateVersion> context)
    {
        archive.Activated.Add(context.Message.TargetDigest);
        return Twice(() => context.Publish(new VersionActivated(context.Message.RunId)));
    }

    public Task Consume(ConsumeContext<DropVersion> context)
    {
        archive.Dropped.Add(context.Message.TargetDigest);
        return Twice(() => context.Publish(new VersionDropped(context.Message.RunId)));
    }

    public Task Consume(ConsumeContext<RestoreVersion> context)
    {
        archive.Restored.Add(context.Message.PreviousDigest);
        return Twice(() => context.Publish(new VersionRestored(context.Message.RunId)));
    }

    private static async Task Twice(Func<Task> publish)
    {
        await publish();
        await publish();
    }
}
