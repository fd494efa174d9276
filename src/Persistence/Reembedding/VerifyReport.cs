using System.Globalization;
using System.Text;

namespace FreeBind.Persistence.Reembedding;

/// <summary>Does every live item of a served modality have a row in the new version or a listed failure?</summary>
/// <param name="LiveItems">Items of the served modalities in <c>media</c> now.</param>
/// <param name="Covered">Of those, items with a row of their current content in the new version.</param>
/// <param name="Failed">Items without a row but with a failure listed for the run.</param>
/// <param name="Missing">Items with neither (no row, or one computed from older content): the gate fails while this is not zero.</param>
/// <param name="MissingSample">Up to 20 missing media ids, to look into.</param>
public sealed record CoverageReport(long LiveItems, long Covered, long Failed, long Missing, IReadOnlyList<string> MissingSample);

/// <summary>HNSW recall@k of the new version's index against an exact scan, on sample queries.</summary>
/// <param name="Queries">Sample queries (stored vectors of random items, the item itself excluded from both answers).</param>
/// <param name="K">Neighbours compared per query.</param>
/// <param name="Recall">Mean recall@k; null without queries (an empty version).</param>
/// <param name="MinRecall">Worst single query; null without queries.</param>
/// <param name="Required">The gate's threshold (0.95 by default).</param>
public sealed record RecallReport(int Queries, int K, double? Recall, double? MinRecall, double Required)
{
    /// <summary>True when there was nothing to query or the mean recall reaches <see cref="Required"/>.</summary>
    public bool Passed => Queries == 0 || Recall >= Required;
}

/// <summary>The saga's end-to-end check: a random sample recomputed from content against the stored vectors.</summary>
/// <param name="Items">Items recomputed.</param>
/// <param name="Mismatches">Items whose stored vector differs by more than the tolerance (1e-5).</param>
/// <param name="MaxError">Largest absolute difference of any component.</param>
public sealed record SampleCheck(int Items, int Mismatches, double MaxError);

/// <summary>How far one modality moved from the version being replaced.</summary>
/// <param name="Modality"><c>image</c>, <c>audio</c> or <c>text</c>.</param>
/// <param name="Items">Items present in both versions.</param>
/// <param name="MeanCosine">Mean cosine similarity of each item's old and new vector; null when the widths differ.</param>
/// <param name="Queries">Sample items used as queries in both versions.</param>
/// <param name="K">Neighbours compared per query.</param>
/// <param name="TopKOverlap">Mean share of the old top-k (by media id) still in the new top-k; null without queries.</param>
public sealed record ModalityDrift(string Modality, long Items, double? MeanCosine, int Queries, int K, double? TopKOverlap);

/// <summary>The storage side of a run's verify gate, stored with the run (<see cref="VerificationStore"/>) and printable.</summary>
/// <param name="RunId">The re-embedding run.</param>
/// <param name="VersionId">The version verified.</param>
/// <param name="BaselineVersionId">The version it would replace (drift is measured against it); null for a first version.</param>
/// <param name="Coverage">Coverage of live items.</param>
/// <param name="Recall">Index recall.</param>
/// <param name="Sample">The recompute check; null until the saga ran it (the gate needs it).</param>
/// <param name="Drift">Drift per modality; empty without a baseline.</param>
public sealed record VerifyReport(
    Guid RunId, int VersionId, int? BaselineVersionId, CoverageReport Coverage, RecallReport Recall, SampleCheck? Sample, IReadOnlyList<ModalityDrift> Drift)
{
    /// <summary>When the report was stored (set by <see cref="VerificationStore.GetAsync"/>).</summary>
    public DateTimeOffset? VerifiedAt { get; init; }

    /// <summary>
    /// The gate: nothing missing, recall reached, the sample recomputed without a mismatch. The same
    /// rule is the <c>passed</c> column of <c>reembed_verifications</c>, which a version's ready mark requires.
    /// </summary>
    public bool Passed => Coverage.Missing == 0 && Recall.Passed && Sample is { Mismatches: 0 };

    /// <summary>The report as <c>freebind reembed status</c> prints it.</summary>
    public string Format()
    {
        var c = CultureInfo.InvariantCulture;
        var s = new StringBuilder();
        s.AppendLine(c, $"verify gate of run {RunId} (version {VersionId}): {(Passed ? "PASSED" : "NOT PASSED")}");
        s.AppendLine(c, $"  coverage  {Coverage.Covered:N0} of {Coverage.LiveItems:N0} live items written, {Coverage.Failed:N0} listed failures, {Coverage.Missing:N0} missing{Mark(Coverage.Missing == 0)}");
        if (Coverage.MissingSample.Count > 0)
            s.AppendLine(c, $"            missing e.g.: {string.Join(", ", Coverage.MissingSample.Take(5))}");
        if (Recall.Queries == 0)
            s.AppendLine(c, $"  recall@{Recall.K} no items to query");
        else
            s.AppendLine(c, $"  recall@{Recall.K} {Recall.Recall:F3} over {Recall.Queries} queries (worst {Recall.MinRecall:F2}), required {Recall.Required:F2}{Mark(Recall.Passed)}");
        if (Sample is null)
            s.AppendLine("  sample    not checked yet");
        else
            s.AppendLine(c, $"  sample    {Sample.Items} items recomputed from content, {Sample.Mismatches} mismatches (max |error| {Sample.MaxError:G3}){Mark(Sample.Mismatches == 0)}");
        if (BaselineVersionId is null)
            s.AppendLine("  drift     no previous version");
        foreach (var d in Drift)
            s.AppendLine(c, $"  drift     {d.Modality,-5} {d.Items,10:N0} items  mean cosine {(d.MeanCosine is { } m ? m.ToString("F4", c) : "n/a (width changed)")}  top-{d.K} overlap {(d.TopKOverlap is { } o ? o.ToString("F3", c) : "n/a")} ({d.Queries} queries)");
        return s.ToString().TrimEnd();
    }

    private static string Mark(bool ok) => ok ? "" : "  ✗";
}
