namespace FreeBind.Persistence.Embeddings;

/// <summary>The stored description of a media item (the <c>media</c> row).</summary>
/// <param name="Id">Media id (the event key).</param>
/// <param name="Tenant">Owning tenant.</param>
/// <param name="Modality"><c>image</c>, <c>audio</c> or <c>text</c>.</param>
/// <param name="Source">Where the content came from: a URI, <c>inline</c> or <c>text</c>.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the content bytes; identical content shares it.</param>
/// <param name="MetadataJson">A JSON object from the event, stored as jsonb.</param>
public sealed record MediaItem(string Id, string Tenant, string Modality, string Source, string Sha256, string MetadataJson = "{}");

/// <summary>One expert's embedding of a media item, kept for re-fusion without the encoders.</summary>
/// <param name="Expert">Expert name from the space manifest, e.g. <c>imagebind</c>, <c>clap-general</c>.</param>
/// <param name="ModelDigest">Digest of the expert model that produced it.</param>
/// <param name="Vector">The expert's embedding (its own width).</param>
public sealed record Atom(string Expert, string ModelDigest, ReadOnlyMemory<float> Vector);

/// <summary>A zero-shot tag of a media item in a space version.</summary>
/// <param name="VocabularyId">The vocabulary the label belongs to.</param>
/// <param name="Label">The label.</param>
/// <param name="Score">Similarity score that selected it.</param>
public sealed record TagScore(long VocabularyId, string Label, float Score);

/// <summary>Everything written for one media item in one space version, in one transaction.</summary>
/// <param name="Media">The media row.</param>
/// <param name="Embedding">The fused vector (the version's dimension).</param>
/// <param name="Atoms">Expert embeddings; may be empty (e.g. a cache hit that skipped encoding).</param>
/// <param name="Tags">Tags in this version; replaces the item's previous tags in this version.</param>
public sealed record EmbeddedItem(MediaItem Media, ReadOnlyMemory<float> Embedding, IReadOnlyList<Atom> Atoms, IReadOnlyList<TagScore> Tags);

/// <summary>How a batch reaches Postgres. Both are idempotent merges; they differ in speed only.</summary>
public enum WriteStrategy
{
    /// <summary>Arrays bound as parameters and expanded with <c>unnest</c> in one INSERT … ON CONFLICT per table.</summary>
    Unnest,

    /// <summary>Binary COPY into temporary staging tables, then one INSERT … SELECT … ON CONFLICT per table.</summary>
    CopyMerge,
}
