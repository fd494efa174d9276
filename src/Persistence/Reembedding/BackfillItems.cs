using FreeBind.Persistence.Embeddings;

namespace FreeBind.Persistence.Reembedding;

/// <summary>One expert model's atoms: what a re-fusion reads (the experts whose digest did not change).</summary>
/// <param name="Expert">Expert name from the manifest.</param>
/// <param name="ModelDigest">Digest of the expert model.</param>
public sealed record AtomKey(string Expert, string ModelDigest);

/// <summary>A keyset range of media ids, <c>After &lt; id ≤ Last</c> (ordinal order of the ids, as Postgres sorts them here).</summary>
/// <param name="After">Exclusive lower bound; null for the first range.</param>
/// <param name="Last">Inclusive upper bound: the last id of the range when it was planned.</param>
/// <param name="Items">Items of the requested modalities in the range when it was planned.</param>
public sealed record BackfillRange(string? After, string Last, int Items);

/// <summary>A media item as a backfill batch reads it: what a re-fusion or re-encode needs, from one snapshot.</summary>
/// <param name="MediaId">The item.</param>
/// <param name="Modality"><c>image</c>, <c>audio</c> or <c>text</c>.</param>
/// <param name="Sha256">Digest of the content the atoms describe; the write checks the item still has it.</param>
/// <param name="Source">Where the content came from (a URI, <c>inline</c>, <c>text</c>).</param>
/// <param name="Tenant">The item's tenant.</param>
/// <param name="Atoms">The stored atoms asked for (by expert and model digest); those absent need an encoder.</param>
public sealed record BackfillSource(string MediaId, string Modality, string Sha256, string Source, string Tenant, IReadOnlyList<Atom> Atoms)
{
    /// <summary>
    /// The stored content (text, or inline data within the worker's cap; <c>media_content</c>), when
    /// asked for and kept; null otherwise. Without it, a re-encode fetches <see cref="Source"/> again
    /// if it is a URI, and cannot re-encode the item if it is <c>inline</c> or <c>text</c>.
    /// </summary>
    public ReadOnlyMemory<byte>? Content { get; init; }

    /// <summary>True when the item can be re-encoded: its content is stored, or its source is a URI to fetch again.</summary>
    public bool Retrievable => Content is not null || !IsStoredOnlySource(Source);

    /// <summary>Sources whose bytes exist only in <c>media_content</c> (inline data, text).</summary>
    public static bool IsStoredOnlySource(string source) => source is "inline" or "text";
}

/// <summary>An item of the verify gate's sample: what to recompute it from, and the vector the version stores for that content.</summary>
/// <param name="Item">The item with its stored content (no atoms: the recompute encodes every expert).</param>
/// <param name="Stored">The version's vector of the item, read in the same snapshot.</param>
public sealed record SampledItem(BackfillSource Item, ReadOnlyMemory<float> Stored);

/// <summary>A backfilled item for the new version.</summary>
/// <param name="MediaId">The item.</param>
/// <param name="Modality">The modality the batch read (<see cref="BackfillSource.Modality"/>).</param>
/// <param name="Sha256">The content digest the batch read (<see cref="BackfillSource.Sha256"/>).</param>
/// <param name="Embedding">The fused vector in the new version.</param>
/// <param name="Atoms">Atoms an encoder computed for this batch (new expert models); stored alongside. Empty for a re-fusion.</param>
/// <param name="Tags">The item's tags in the new version.</param>
public sealed record BackfillRow(
    string MediaId, string Modality, string Sha256, ReadOnlyMemory<float> Embedding, IReadOnlyList<Atom> Atoms, IReadOnlyList<TagScore> Tags);

/// <summary>What a backfill write did. Every row is accounted for: Written + AlreadyPresent + Superseded = rows.</summary>
/// <param name="Written">Rows inserted into the new version, or replacing a row computed from the item's older content.</param>
/// <param name="AlreadyPresent">Rows the new version already had for the item's current content (a live dual-write, or an earlier delivery of this batch): kept.</param>
/// <param name="Superseded">Items whose content changed or that were deleted since the batch read them: skipped, the live path owns them.</param>
public readonly record struct BackfillWriteResult(int Written, int AlreadyPresent, int Superseded);

/// <summary>An item a run could not write into its new version, with a reason (listed, never dropped silently).</summary>
/// <param name="MediaId">The item.</param>
/// <param name="Reason">A short class, e.g. <c>content-unavailable</c>, <c>decode</c>, <c>encode</c>.</param>
/// <param name="Detail">One sentence for the operator.</param>
public sealed record ItemFailure(string MediaId, string Reason, string Detail = "");
