using System.Diagnostics;
using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Consumers.Pipeline.Content;
using FreeBind.Consumers.Pipeline.Tagging;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Spaces;
using MassTransit;
using Microsoft.Extensions.Logging;
using EncodingAtomKey = FreeBind.Encoding.AtomKey;

namespace FreeBind.Consumers.Reembedding;

/// <summary>Cuts keyset batches of the media ids a version serves and sends each as a <see cref="BackfillBatch"/>.</summary>
public sealed class DispatchBackfillConsumer(RunVersions versions, BackfillReader reader) : IConsumer<DispatchBackfill>
{
    /// <inheritdoc />
    public async Task Consume(ConsumeContext<DispatchBackfill> context)
    {
        var m = context.Message;
        RunVersion target;
        try
        {
            target = await versions.LoadAsync(m.Space, m.TargetDigest, context.CancellationToken);
        }
        catch (RunStepException e)
        {
            await context.Publish(new ReembeddingStepFailed(m.RunId, "dispatch", e.Message));
            return;
        }
        var modalities = target.Definition.Plans.Keys.Select(k => k.ToName()).ToList();
        var after = m.After;
        var count = 0;
        var exhausted = false;
        while (count < m.MaxBatches)
        {
            var range = await reader.NextRangeAsync(modalities, after, m.BatchSize, context.CancellationToken);
            if (range is null)
            {
                exhausted = true;
                break;
            }
            await context.Publish(new BackfillBatch(m.RunId, m.Space, m.TargetDigest, m.FirstSequence + count, range.After, range.Last));
            after = range.Last;
            count++;
        }
        await context.Publish(new BackfillDispatched(m.RunId, m.FirstSequence, count, after, exhausted));
    }
}

/// <summary>
/// Rebuilds one batch into the version being built, by the cheapest path per item: stored atoms of
/// unchanged expert models are reused (a factor or projector change is a pure re-fusion: no content,
/// no encoder); an expert whose model changed is re-encoded from the item's kept content (text,
/// inline data) or its URI fetched again under the content policy, and only that expert. Items that
/// cannot be rebuilt are listed with a reason. The write never overwrites a newer live write.
/// </summary>
public sealed partial class BackfillBatchConsumer(
    RunVersions versions, BackfillReader reader, BackfillWriter writer, RunFailures failures, ItemRebuilder rebuilder, Embedder embedder,
    ILogger<BackfillBatchConsumer> logger) : IConsumer<BackfillBatch>
{
    /// <inheritdoc />
    public async Task Consume(ConsumeContext<BackfillBatch> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        var started = Stopwatch.GetTimestamp();
        RunVersion target;
        try
        {
            target = await versions.LoadAsync(m.Space, m.TargetDigest, ct);
        }
        catch (RunStepException e)
        {
            await context.Publish(new ReembeddingStepFailed(m.RunId, "backfill", e.Message));
            return;
        }
        if (!target.Version.HasTable)
        {
            // Cancelled or failed meanwhile: nothing to write, and the saga ignores the answer.
            LogVersionEnded(logger, m.Sequence, target.Version.Key, target.Version.State.ToString());
            return;
        }
        var definition = target.Definition;
        embedder.Fusion.Prepare(definition);
        var modalities = definition.Plans.Keys.Select(k => k.ToName()).ToList();
        var sources = await reader.ReadAsync(new BackfillRange(m.After, m.Last, 0), modalities, atoms: null, withContent: true, ct);

        List<BackfillRow> rows;
        List<ItemFailure> failed;
        try
        {
            (rows, failed) = await rebuilder.RebuildAsync(target, sources, ct);
        }
        catch (RunStepException e)
        {
            await context.Publish(new ReembeddingStepFailed(m.RunId, "backfill", e.Message));
            return;
        }
        BackfillWriteResult written;
        try
        {
            written = await writer.WriteAsync(target.Version, rows, ct);
        }
        catch (SpaceVersionException e) when (e.Refusal == SpaceVersionRefusal.Ended)
        {
            LogVersionEnded(logger, m.Sequence, target.Version.Key, e.Message);
            return;
        }
        if (failed.Count > 0) await failures.RecordAsync(m.RunId, failed, ct);
        var byReason = failed.GroupBy(f => f.Reason).ToDictionary(g => g.Key, g => g.Count());
        await context.Publish(new BackfillBatchCompleted(m.RunId, m.Sequence, written.Written + written.AlreadyPresent + written.Superseded,
            byReason, Stopwatch.GetElapsedTime(started)));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Backfill batch {Sequence} skipped: version {Version} ended ({Detail})")]
    private static partial void LogVersionEnded(ILogger logger, long sequence, string version, string detail);
}
