using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Pipeline.Content;
using FreeBind.Consumers.Pipeline.Tagging;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Reembedding;
using EncodingAtomKey = FreeBind.Encoding.AtomKey;

namespace FreeBind.Consumers.Reembedding;

/// <summary>An item a run cannot rebuild, with its reason class.</summary>
/// <param name="reason">Short class: content-unavailable, content-not-kept, content-changed, decode, encode, schema.</param>
/// <param name="message">One sentence for the operator.</param>
public sealed class ItemFailedException(string reason, string message) : Exception(message)
{
    /// <summary>The reason class.</summary>
    public string Reason { get; } = reason;
}

/// <summary>
/// Rebuilds items for a version by the cheapest path: stored atoms of unchanged expert models are
/// reused (a factor or projector change needs no content and no encoder: the version loaded for
/// fusion only is enough); an expert whose model changed is re-encoded from the kept content (text,
/// inline data) or the URI fetched again under the content policy, and only that expert. Also
/// recomputes an item from content end to end (the verify gate). Encoders are loaded only when an
/// item needs one.
/// </summary>
public sealed class ItemRebuilder(RunVersions versions, EmbeddingStore store, ContentResolver content, Embedder embedder, Tagger tagger)
{
    // Items of a batch are rebuilt concurrently, so the micro-batchers of the fusion mixtures and
    // encoders see full batches instead of one item at a time.
    private const int Concurrency = 64;

    /// <summary>Rows for the items that could be rebuilt, and a listed failure for each other one.</summary>
    /// <param name="target">The version being built.</param>
    /// <param name="items">Items read by <see cref="BackfillReader"/> (with every stored atom).</param>
    /// <param name="ct">Cancels the work.</param>
    /// <exception cref="RunStepException">An item needs an encoder this machine cannot load for the version.</exception>
    public async Task<(List<BackfillRow> Rows, List<ItemFailure> Failed)> RebuildAsync(RunVersion target, IReadOnlyList<BackfillSource> items, CancellationToken ct)
    {
        var rows = new BackfillRow?[items.Count];
        var failed = new ItemFailure?[items.Count];
        await Parallel.ForAsync(0, items.Count, new ParallelOptions { MaxDegreeOfParallelism = Concurrency, CancellationToken = ct }, async (i, token) =>
        {
            try
            {
                rows[i] = await RebuildAsync(target, items[i], token);
            }
            catch (ItemFailedException e)
            {
                failed[i] = new ItemFailure(items[i].MediaId, e.Reason, e.Message);
            }
        });
        return ([.. rows.OfType<BackfillRow>()], [.. failed.OfType<ItemFailure>()]);
    }

    /// <summary>The item's vector recomputed from its content, every expert encoded (no stored atom used).</summary>
    /// <param name="target">The version.</param>
    /// <param name="item">The item.</param>
    /// <param name="ct">Cancels the work.</param>
    /// <exception cref="ItemFailedException">Its content cannot be had.</exception>
    /// <exception cref="RunStepException">This machine cannot load the version's encoders.</exception>
    public async Task<float[]> RecomputeAsync(RunVersion target, BackfillSource item, CancellationToken ct)
    {
        if (!ModalityNames.TryParse(item.Modality, out var modality))
            throw new ItemFailedException(ErrorClasses.Schema, $"stored modality '{item.Modality}' is unknown");
        var input = await ContentOfAsync(item, modality, ct);
        var definition = versions.ForEncoding(target);
        embedder.Prepare(definition);
        var atoms = await embedder.EncodeAsync([definition], input, cancellationToken: ct);
        return await embedder.FuseAsync(definition, modality, atoms, ct);
    }

    /// <summary>One item's row in the new version.</summary>
    /// <exception cref="ItemFailedException">It cannot be rebuilt (reason and one sentence).</exception>
    /// <exception cref="RunStepException">It needs an encoder this machine cannot load for the version.</exception>
    public async Task<BackfillRow> RebuildAsync(RunVersion target, BackfillSource item, CancellationToken ct)
    {
        var definition = target.Definition;
        if (!ModalityNames.TryParse(item.Modality, out var modality))
            throw new ItemFailedException(ErrorClasses.Schema, $"stored modality '{item.Modality}' is unknown");
        var needed = Embedder.AtomsFor(definition, modality);
        var stored = item.Atoms.ToDictionary(a => new EncodingAtomKey(a.Expert, a.ModelDigest), a => a.Vector.ToArray());
        var atoms = new Dictionary<EncodingAtomKey, float[]>();
        foreach (var key in needed)
            if (stored.TryGetValue(key, out var vector)) atoms[key] = vector;
        var computed = new List<Atom>();
        if (atoms.Count < needed.Count)
        {
            // Only the experts whose model changed are encoded: the known atoms are passed in.
            var input = await ContentOfAsync(item, modality, ct);
            var encoding = versions.ForEncoding(target);
            embedder.Prepare(encoding);
            IReadOnlyDictionary<EncodingAtomKey, float[]> all;
            try
            {
                all = await embedder.EncodeAsync([encoding], input, atoms, ct);
            }
            catch (MediaException e)
            {
                throw new ItemFailedException("decode", e.Message);
            }
            catch (ModelOutputException e)
            {
                throw new ItemFailedException("encode", e.Message);
            }
            foreach (var key in needed.Where(k => !atoms.ContainsKey(k)))
                computed.Add(new Atom(key.Expert, key.ModelDigest, all[key]));
            atoms = new(all);
        }
        var embedding = await embedder.FuseAsync(definition, modality, atoms, ct);
        var tags = await TagAsync(target, item.Tenant, modality, embedding, ct);
        return new BackfillRow(item.MediaId, item.Modality, item.Sha256, embedding, computed, tags);
    }

    private async Task<IReadOnlyList<TagScore>> TagAsync(RunVersion target, string tenant, Modality modality, float[] embedding, CancellationToken ct)
    {
        try
        {
            return await tagger.TagAsync(target.Definition, target.Version, tenant, modality, embedding, ct);
        }
        catch (InvalidOperationException) when (target.Definition.Use == SpaceUse.Fuse)
        {
            // The tenant's labels are not embedded in this version yet, and that takes the text encoders.
            return await tagger.TagAsync(versions.ForEncoding(target), target.Version, tenant, modality, embedding, ct);
        }
    }

    /// <summary>The item's content as it was embedded: kept bytes, or its URI fetched again; checked against its digest.</summary>
    public async Task<MediaInput> ContentOfAsync(BackfillSource item, Modality modality, CancellationToken ct)
    {
        byte[] bytes;
        if (item.Content is { } read)
            bytes = read.ToArray();
        else if (await store.GetContentAsync(item.MediaId, ct) is { } kept)
            bytes = kept;
        else if (Uri.TryCreate(item.Source, UriKind.Absolute, out var uri) && uri.Scheme is "file" or "http" or "https")
        {
            try
            {
                bytes = await content.ResolveAsync(new MediaSource.Link(uri), ct);
            }
            catch (Exception e) when (e is RejectedException or IOException or HttpRequestException or TimeoutException)
            {
                throw new ItemFailedException("content-unavailable", $"{item.Source} cannot be fetched again: {e.Message}");
            }
        }
        else
            throw new ItemFailedException("content-not-kept", $"the content of {item.MediaId} was not kept (inline data over Content:MaxStoredInlineBytes) and has no URI");
        if (MediaEventParser.Sha256Hex(bytes) != item.Sha256)
            throw new ItemFailedException("content-changed", $"{item.Source} no longer has the content the atoms were computed from");
        return modality == Modality.Text
            ? MediaInput.FromText(System.Text.Encoding.UTF8.GetString(bytes))
            : new MediaInput(modality, bytes, FileName: Uri.TryCreate(item.Source, UriKind.Absolute, out var u) ? u.AbsolutePath : null);
    }


}
