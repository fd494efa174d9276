using System.Globalization;
using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Encoding;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Sagas;
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
    VersionVerifier verifier, SpaceIndexBuilder indexes, VerificationStore reports, SpaceVersionLifecycle lifecycle,
    RunStepLocks locks, SagaStore<ReembeddingRun> runs) : IConsumer<VerifyReembedding>
{
    private const double Tolerance = 1e-5;

    /// <inheritdoc />
    public async Task Consume(ConsumeContext<VerifyReembedding> context)
    {
        var m = context.Message;
        var ct = context.CancellationToken;
        // A repeat (the watchdog nudged a gate that is merely slow, or one the saga has left) does nothing.
        await using var held = await locks.TryAcquireAsync(m.RunId, "verify", ct);
        if (held is null || (await runs.LoadAsync(m.RunId, ct))?.CurrentState != "Verifying")
            return;
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
        var mismatches = 0;
        var maxError = 0.0;
        var recomputed = 0;
        VerifyReport report;
        try
        {
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
            report = await verifier.VerifyAsync(m.RunId, version, baseline, modalities, cancellationToken: ct);

            // The sample and its stored vectors come from one snapshot: a live write after it cannot
            // make a correct row look wrong. Recomputed concurrently, so the encoders batch.
            var sample = await reader.SampleAsync(version, modalities, m.SampleSize, Random.Shared.Next(), ct);
            var errors = new double?[sample.Count];
            await Parallel.ForAsync(0, sample.Count, new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = ct }, async (i, token) =>
            {
                try
                {
                    errors[i] = MaxAbsDiff(await rebuilder.RecomputeAsync(target, sample[i].Item, token), sample[i].Stored.Span);
                }
                catch (ItemFailedException)
                {
                    // Content not at hand (or changed since): such an item was re-fused from its atoms, or is a listed failure.
                }
            });
            foreach (var error in errors.OfType<double>())
            {
                recomputed++;
                maxError = Math.Max(maxError, error);
                if (error > Tolerance) mismatches++;
            }
        }
        catch (Exception e) when (e is RunStepException or SpaceVersionException)
        {
            // Not loadable here, or the version ended meanwhile (a cancel: the saga ignores the answer then).
            await context.Publish(new ReembeddingStepFailed(m.RunId, "verify", e.Message));
            return;
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

    private static double MaxAbsDiff(float[] a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) return double.PositiveInfinity;
        var max = 0.0;
        for (var i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }
}
