using System.Globalization;
using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Encoding;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Spaces;
using MassTransit;

namespace FreeBind.Consumers.Reembedding;

/// <summary>
/// The verify gate before cut-over: a catch-up pass writes items the batches missed (content changed
/// under a batch, items added behind the cursor without a live dual-write); then coverage (every live
/// item has a row or a listed failure), a random sample recomputed from content end to end against the
/// stored vectors (≤ 1e-5), the HNSW index built and its recall@10 against an exact scan (≥ 0.95), and
/// the drift against the active version. The report is stored with the run; a passed gate marks the version ready.
/// </summary>
public sealed class VerifyConsumer(
    RunVersions versions, SpaceCatalog catalog, BackfillReader reader, BackfillWriter writer, RunFailures failures, ItemRebuilder rebuilder,
    EmbeddingStore store, VersionVerifier verifier, SpaceIndexBuilder indexes, VerificationStore reports, SpaceVersionLifecycle lifecycle) : IConsumer<VerifyReembedding>
{
    private const double Tolerance = 1e-5;

    /// <inheritdoc />
    public async Task Consume(ConsumeContext<VerifyReembedding> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        RunVersion target;
        try
        {
            target = await versions.LoadAsync(m.Space, m.TargetDigest, ct);
        }
        catch (RunStepException e)
        {
            await context.Publish(new ReembeddingStepFailed(m.RunId, "verify", e.Message));
            return;
        }
        var version = target.Version;
        var modalities = target.Definition.Plans.Keys.Select(k => k.ToName()).ToList();

        // Catch-up: whatever has no row yet is rebuilt now or listed as failed.
        string? after = null;
        while ((await reader.ReadMissingAsync(version, modalities, m.RunId, after, 512, null, withContent: true, ct)) is { Count: > 0 } missing)
        {
            var (rows, failed) = await rebuilder.RebuildAsync(target, missing, ct);
            await writer.WriteAsync(version, rows, ct);
            if (failed.Count > 0) await failures.RecordAsync(m.RunId, failed, ct);
            after = missing[^1].MediaId;
        }
        await indexes.BuildAsync(version, ct);
        var active = await catalog.GetActiveAsync(m.Space, ct);
        var baseline = active is not null && active.Id != version.Id ? active : null;
        var report = await verifier.VerifyAsync(m.RunId, version, baseline, modalities, cancellationToken: ct);

        var sample = await SampleAsync(modalities, m.SampleSize, ct);
        var mismatches = 0;
        var maxError = 0.0;
        var recomputed = 0;
        foreach (var item in sample)
        {
            float[] fresh;
            try
            {
                fresh = await rebuilder.RecomputeAsync(target, item, ct);
            }
            catch (ItemFailedException)
            {
                continue; // content not at hand: such an item is a listed failure, or was re-fused from its atoms
            }
            if (await store.GetEmbeddingAsync(version, item.MediaId, ct) is not { } stored) continue; // deleted by a live write meanwhile
            recomputed++;
            var error = MaxAbsDiff(fresh, stored);
            maxError = Math.Max(maxError, error);
            if (error > Tolerance) mismatches++;
        }
        report = report with { Sample = new SampleCheck(recomputed, mismatches, maxError) };
        var (coverage, recall, driftReport) = (report.Coverage, report.Recall, report.Drift);
        await reports.SaveAsync(report, ct);
        if (report.Passed)
        {
            try
            {
                await lifecycle.MarkReadyAsync(version, m.RunId, ct);
            }
            catch (SpaceVersionException e)
            {
                await context.Publish(new ReembeddingStepFailed(m.RunId, "verify", e.Message));
                return;
            }
        }
        var inv = CultureInfo.InvariantCulture;
        var findings = new List<string>
        {
            $"coverage: {coverage.Covered} rows + {coverage.Failed} listed failures of {coverage.LiveItems} live items, {coverage.Missing} missing",
            $"sample: {recomputed} items recomputed from content, {mismatches} over {Tolerance.ToString(inv)} (max error {maxError.ToString("G3", inv)})",
            $"recall@{recall.K}: {(recall.Recall is { } r ? r.ToString("0.000", inv) : "no query")} on {recall.Queries} queries (required {recall.Required.ToString(inv)})",
        };
        findings.Sort((a, b) => Failing(a, coverage, mismatches, recall).CompareTo(Failing(b, coverage, mismatches, recall)));
        await context.Publish(new ReembeddingVerified(m.RunId, report.Passed, findings,
            [.. driftReport.Select(d => $"{d.Modality}: mean cosine old vs new {d.MeanCosine?.ToString("0.000", inv)}, top-{d.K} overlap {d.TopKOverlap?.ToString("0.000", inv) ?? "n/a"} ({d.Items} items)")]));
    }

    // Failed checks first, so the saga's one-line reason names the failure.
    private static int Failing(string line, CoverageReport coverage, int mismatches, RecallReport recall) =>
        (line.StartsWith("coverage", StringComparison.Ordinal) && coverage.Missing > 0)
        || (line.StartsWith("sample", StringComparison.Ordinal) && mismatches > 0)
        || (line.StartsWith("recall", StringComparison.Ordinal) && !recall.Passed) ? 0 : 1;

    // A uniform sample of live items (reservoir over the keyset ranges; ids and digests only).
    private async Task<List<BackfillSource>> SampleAsync(IReadOnlyCollection<string> modalities, int size, CancellationToken ct)
    {
        var sample = new List<BackfillSource>(size);
        if (size == 0) return sample;
        var seen = 0L;
        string? after = null;
        while (await reader.NextRangeAsync(modalities, after, 4096, ct) is { } range)
        {
            foreach (var item in await reader.ReadAsync(range, modalities, [], withContent: true, ct))
            {
                seen++;
                if (sample.Count < size) sample.Add(item);
                else if (Random.Shared.NextInt64(seen) is var j && j < size) sample[(int)j] = item;
            }
            after = range.Last;
        }
        return sample;
    }

    private static double MaxAbsDiff(float[] a, float[] b)
    {
        if (a.Length != b.Length) return double.PositiveInfinity;
        var max = 0.0;
        for (var i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }
}
