using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Spaces;
using FreeBind.Encoding;
using FreeBind.Persistence.Embeddings;

namespace FreeBind.Consumers.Pipeline;

/// <summary>An item to embed: what an upsert event says, without Kafka's envelope.</summary>
/// <param name="Id">Media id.</param>
/// <param name="Tenant">Owner (selects tag vocabularies).</param>
/// <param name="Modality">How the content is decoded and encoded.</param>
/// <param name="Source">Where the content comes from.</param>
/// <param name="DeclaredSha256">Digest the content must have, if declared.</param>
/// <param name="MetadataJson">Metadata stored with the item.</param>
public sealed record ItemRequest(string Id, string Tenant, Modality Modality, MediaSource Source, string? DeclaredSha256 = null, string MetadataJson = "{}")
{
    /// <summary>The request of an upsert event.</summary>
    public static ItemRequest From(MediaEvent upsert) =>
        new(upsert.Id, upsert.Tenant, upsert.Modality, upsert.Source ?? throw new ArgumentException("a delete event has no content", nameof(upsert)),
            upsert.Sha256, upsert.MetadataJson);

    /// <summary>How the <c>media.source</c> column names the source.</summary>
    public string SourceName => Source switch
    {
        MediaSource.Link link => link.Uri.ToString(),
        MediaSource.Inline => "inline",
        _ => "text",
    };
}

/// <summary>An item's vector and tags in one target version.</summary>
/// <param name="Target">The version.</param>
/// <param name="Vector">Fused from the item's atoms.</param>
/// <param name="Tags">Zero-shot tags in that version, best first.</param>
public sealed record TargetEmbedding(SpaceTarget Target, float[] Vector, IReadOnlyList<TagScore> Tags);

/// <summary>What the item pipeline made of an item: embeddings ready to store, or a refusal.</summary>
public abstract record ItemResult(ItemRequest Request)
{
    /// <summary>The item, embedded in every target that serves its modality.</summary>
    /// <param name="Request">The item.</param>
    /// <param name="Sha256">Digest of the content bytes.</param>
    /// <param name="Atoms">The expert embeddings every target was fused from (each computed once).</param>
    /// <param name="Embeddings">One per target serving the modality.</param>
    /// <param name="StoredContent">Content to keep for a re-encode (text; inline data under the cap), else null.</param>
    /// <param name="CacheHit">No encoder ran: every vector (and its atoms) came from the cache.</param>
    /// <param name="Generation">The <see cref="TargetSet.Generation"/> it was computed for.</param>
    public sealed record Embedded(ItemRequest Request, string Sha256, IReadOnlyList<Atom> Atoms, IReadOnlyList<TargetEmbedding> Embeddings,
        byte[]? StoredContent, bool CacheHit, long Generation) : ItemResult(Request)
    {
        /// <summary>The row set to write.</summary>
        public ItemWrite ToWrite() => new(
            new MediaItem(Request.Id, Request.Tenant, Request.Modality.ToName(), Request.SourceName, Sha256, Request.MetadataJson),
            Atoms, [.. Embeddings.Select(e => new VersionEmbedding(e.Target.Version, e.Vector, e.Tags))], StoredContent);
    }

    /// <summary>The item can never succeed: it is dead-lettered with this class and reason.</summary>
    /// <param name="Request">The item.</param>
    /// <param name="ErrorClass">One of <see cref="ErrorClasses"/>.</param>
    /// <param name="Reason">One sentence.</param>
    /// <param name="Attempts">How often it was tried.</param>
    public sealed record Rejected(ItemRequest Request, string ErrorClass, string Reason, int Attempts) : ItemResult(Request);
}
