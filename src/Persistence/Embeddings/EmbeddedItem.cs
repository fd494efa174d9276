using FreeBind.Persistence.Spaces;

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

/// <summary>An item's fused vector and tags in one space version.</summary>
/// <param name="Version">The version (its table receives the vector).</param>
/// <param name="Embedding">The fused vector (the version's dimension).</param>
/// <param name="Tags">Tags in this version; replaces the item's previous tags in this version.</param>
public sealed record VersionEmbedding(SpaceVersion Version, ReadOnlyMemory<float> Embedding, IReadOnlyList<TagScore> Tags);

/// <summary>
/// Everything live ingestion stores for one upserted item, in one transaction: the media row, the
/// item's whole atom set, its re-encodable content, and its vector and tags in each target version.
/// </summary>
/// <param name="Media">The media row.</param>
/// <param name="Atoms">
/// The item's atoms: they replace its stored atom set, so atoms always describe the current content
/// (atoms of other experts or models are removed).
/// </param>
/// <param name="Embeddings">One entry per target version.</param>
/// <param name="Content">
/// Content kept for a re-encode (text, inline data under the cap), or null when the content can be
/// fetched again (a <c>uri</c>); replaces (or removes) the stored content.
/// </param>
public sealed record ItemWrite(MediaItem Media, IReadOnlyList<Atom> Atoms, IReadOnlyList<VersionEmbedding> Embeddings, byte[]? Content = null);

/// <summary>An upsert into one space version (a convenience shape of <see cref="ItemWrite"/>).</summary>
/// <param name="Media">The media row.</param>
/// <param name="Embedding">The fused vector (the version's dimension).</param>
/// <param name="Atoms">The item's atoms (they replace its stored atom set).</param>
/// <param name="Tags">Tags in this version; replaces the item's previous tags in this version.</param>
public sealed record EmbeddedItem(MediaItem Media, ReadOnlyMemory<float> Embedding, IReadOnlyList<Atom> Atoms, IReadOnlyList<TagScore> Tags);
