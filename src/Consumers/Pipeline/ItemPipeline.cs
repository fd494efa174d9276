using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Pipeline.Content;
using FreeBind.Consumers.Pipeline.Tagging;
using FreeBind.Consumers.Resilience;
using FreeBind.Consumers.Spaces;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Persistence.Cache;
using FreeBind.Persistence.Embeddings;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Pipeline;

/// <summary>
/// One item → its embeddings in every target version, without Kafka and without writing: resolve
/// the content (content policy) → digest → cache (one lookup per target) → encoders, each atom once
/// for all targets → fusion per target → tags per target. Live ingestion writes the result; a
/// backfill or a query can call it the same way.
/// </summary>
/// <remarks>
/// Never throws for a bad item: refusals (invalid content, undecodable media, non-finite model
/// output, data Postgres refuses) become <see cref="ItemResult.Rejected"/> with their class;
/// infrastructure failures are retried until they pass; an unforeseen failure is retried
/// <see cref="Ingestion.IngestionOptions.UnforeseenAttempts"/> times, then rejected as
/// <see cref="ErrorClasses.Internal"/>. Only cancellation escapes.
/// </remarks>
public sealed class ItemPipeline(ContentResolver resolver, Embedder embedder, EmbeddingCache cache, Tagger tagger,
    IOptions<ContentOptions> content, Retries retries)
{
    private readonly ContentOptions _content = content.Value;

    /// <summary>Embeds <paramref name="request"/> into every target of <paramref name="targets"/> that serves its modality.</summary>
    public Task<ItemResult> ProcessAsync(ItemRequest request, TargetSet targets, CancellationToken cancellationToken) =>
        RunAsync(request, targets, prior: null, cancellationToken);

    /// <summary>
    /// Brings a result computed for an older target set up to <paramref name="targets"/>: vectors of
    /// removed targets are dropped, new targets are fused from the item's atoms (an encoder runs only
    /// for an atom the new targets need and the item lacks).
    /// </summary>
    public Task<ItemResult> RetargetAsync(ItemResult.Embedded result, TargetSet targets, CancellationToken cancellationToken)
    {
        var serving = targets.Serving(result.Request.Modality);
        var byVersion = result.Embeddings.ToDictionary(e => e.Target.Version.Id);
        if (serving.All(t => byVersion.ContainsKey(t.Version.Id)))
            return Task.FromResult<ItemResult>(result with
            {
                Embeddings = [.. serving.Select(t => byVersion[t.Version.Id] with { Target = t })],
                Atoms = NeededAtoms(result.Atoms, serving, result.Request.Modality),
                Generation = targets.Generation,
            });
        return RunAsync(result.Request, targets, result, cancellationToken);
    }

    private async Task<ItemResult> RunAsync(ItemRequest request, TargetSet targets, ItemResult.Embedded? prior, CancellationToken cancellationToken)
    {
        var attempts = 0;
        try
        {
            return await retries.Item.ExecuteAsync(async token =>
            {
                attempts++;
                return await ProcessOnceAsync(request, targets, prior, token);
            }, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var (errorClass, reason) = Reject(e);
            return new ItemResult.Rejected(request, errorClass, reason, attempts);
        }
    }

    private static (string Class, string Reason) Reject(Exception e) => e switch
    {
        RejectedException r => (r.ErrorClass, r.Message),
        MediaException m => (ErrorClasses.Decode(KebabCase(m.Kind.ToString())), m.Message),
        ModelOutputException => (ErrorClasses.ModelOutput, e.Message),
        TimeoutException or HttpRequestException => (ErrorClasses.FetchFailed, e.Message),
        _ when Failures.Classify(e) == FailureKind.ItemRefused => (ErrorClasses.Database, Failures.Describe(e)),
        _ => (ErrorClasses.Internal, Failures.Describe(e)),
    };

    private async Task<ItemResult> ProcessOnceAsync(ItemRequest request, TargetSet set, ItemResult.Embedded? prior, CancellationToken cancellationToken)
    {
        var modality = request.Modality;
        var targets = set.Serving(modality);
        if (targets.Count == 0)
            throw new RejectedException(ErrorClasses.UnknownModality,
                $"space '{set.Space}' does not serve {modality.ToName()}" + (set.Targets.Count == 0 ? " (it has no version this worker can write)" : ""));

        var known = new Dictionary<AtomKey, float[]>();
        foreach (var atom in prior?.Atoms ?? []) known[new AtomKey(atom.Expert, atom.ModelDigest)] = atom.Vector.ToArray();
        var needed = targets.SelectMany(t => Embedder.AtomsFor(t.Definition, modality)).Distinct().ToList();

        // The content is read again only when an atom is missing or the digest is unknown.
        byte[]? bytes = null;
        string sha;
        byte[]? stored;
        if (prior is not null)
        {
            (sha, stored) = (prior.Sha256, prior.StoredContent);
        }
        else
        {
            bytes = await resolver.ResolveAsync(request.Source, cancellationToken);
            sha = MediaEventParser.Sha256Hex(bytes);
            if (request.DeclaredSha256 is { } declared && declared != sha)
                throw new RejectedException(ErrorClasses.DigestMismatch, $"content sha256 is {sha}, the event declares {declared}");
            stored = request.Source is MediaSource.Text || (request.Source is MediaSource.Inline && bytes.Length <= _content.MaxStoredInlineBytes) ? bytes : null;
        }

        // One Redis round trip for every target; a hit brings the atoms it was fused from.
        var keys = targets.Select(t => CacheKey.For(t.Version, modality.ToName(), sha)).ToList();
        var entries = await cache.TryGetEntriesAsync([.. keys.Select((k, i) => (k, targets[i].Version.Dimension))]);
        var vectors = new float[]?[targets.Count];
        for (var i = 0; i < targets.Count; i++)
        {
            if (entries[i] is not { } entry) continue;
            var atoms = entry.Atoms.ToDictionary(a => new AtomKey(a.Expert, a.ModelDigest), a => a.Vector.ToArray());
            // An entry without the atoms this version needs (an older format) cannot store the item whole: a miss.
            if (!Embedder.AtomsFor(targets[i].Definition, modality).All(atoms.ContainsKey)) continue;
            vectors[i] = entry.Vector;
            foreach (var (key, atom) in atoms) known.TryAdd(key, atom);
        }

        var encoded = false;
        if (!needed.All(known.ContainsKey))
        {
            bytes ??= await resolver.ResolveAsync(request.Source, cancellationToken);
            var input = ToInput(request, bytes);
            var all = await embedder.EncodeAsync([.. targets.Select(t => t.Definition)], input, known, cancellationToken);
            foreach (var (key, atom) in all) known[key] = atom;
            encoded = true;
        }

        var embeddings = new List<TargetEmbedding>(targets.Count);
        for (var i = 0; i < targets.Count; i++)
        {
            var target = targets[i];
            var vector = vectors[i];
            if (vector is null)
            {
                vector = await embedder.FuseAsync(target.Definition, modality, known, cancellationToken);
                await cache.SetAsync(keys[i], vector, Atoms(known, Embedder.AtomsFor(target.Definition, modality)));
            }
            var tags = await tagger.TagAsync(target.Definition, target.Version, request.Tenant, modality, vector, cancellationToken);
            embeddings.Add(new TargetEmbedding(target, vector, tags));
        }
        return new ItemResult.Embedded(request, sha, Atoms(known, needed), embeddings, stored, CacheHit: !encoded && (prior?.CacheHit ?? true), set.Generation);
    }

    private static List<Atom> Atoms(Dictionary<AtomKey, float[]> atoms, IEnumerable<AtomKey> keys) =>
        [.. keys.Distinct().Select(k => new Atom(k.Expert, k.ModelDigest, atoms[k]))];

    private static List<Atom> NeededAtoms(IReadOnlyList<Atom> atoms, IReadOnlyList<SpaceTarget> targets, Modality modality)
    {
        var needed = targets.SelectMany(t => Embedder.AtomsFor(t.Definition, modality)).ToHashSet();
        return [.. atoms.Where(a => needed.Contains(new AtomKey(a.Expert, a.ModelDigest)))];
    }

    private static MediaInput ToInput(ItemRequest request, byte[] bytes)
    {
        if (request.Modality != Modality.Text)
            return new MediaInput(request.Modality, bytes, FileName: request.Source is MediaSource.Link l ? l.Uri.AbsolutePath : null);
        try
        {
            return MediaInput.FromText(new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes));
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw new RejectedException(ErrorClasses.Schema, "text content is not valid UTF-8");
        }
    }

    private static string KebabCase(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) && i > 0 ? "-" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
}
