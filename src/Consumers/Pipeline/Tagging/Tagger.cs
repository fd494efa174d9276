using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics.Tensors;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Spaces;
using FreeBind.Persistence.Tags;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Pipeline.Tagging;

/// <summary>
/// Zero-shot tags: each tenant's labels are embedded as text prompts ("a photo of a {label}.") in
/// the same space version as the items, stored, and an item gets the top-k labels above a
/// threshold by cosine similarity. Label embeddings belong to a space version, like everything else.
/// </summary>
public sealed class Tagger(TagVocabularyStore store, Embedder embedder, IOptions<TaggingOptions> options)
{
    private static readonly TimeSpan Refresh = TimeSpan.FromSeconds(30);
    private readonly ConcurrentDictionary<(string Tenant, int Version, Modality Modality), (long Loaded, Task<Label[]> Labels)> _labels = new();

    private readonly TaggingOptions _options = options.Value;

    private sealed record Label(long VocabularyId, string Text, float[] Vector);

    public async Task<IReadOnlyList<TagScore>> TagAsync(SpaceDefinition space, SpaceVersion version, string tenant, Modality modality, float[] vector, CancellationToken cancellationToken)
    {
        if (_options.TopK == 0) return [];
        var labels = await LabelsAsync(space, version, tenant, modality, cancellationToken);
        if (labels.Length == 0) return [];
        return labels
            .Select(l => new TagScore(l.VocabularyId, l.Text, TensorPrimitives.Dot(vector, l.Vector)))
            .Where(t => t.Score >= _options.Threshold)
            .OrderByDescending(t => t.Score).ThenBy(t => t.Label, StringComparer.Ordinal)
            .Take(_options.TopK)
            .ToList();
    }

    /// <summary>Embeds and stores the prompts of every label of the tenant (all modalities) in the version.</summary>
    public async Task<int> EmbedVocabulariesAsync(SpaceDefinition space, SpaceVersion version, string tenant, CancellationToken cancellationToken)
    {
        var total = 0;
        foreach (var modality in space.Plans.Keys)
        {
            _labels.TryRemove((tenant, version.Id, modality), out _);
            total += (await LabelsAsync(space, version, tenant, modality, cancellationToken)).Length;
        }
        return total;
    }

    private Task<Label[]> LabelsAsync(SpaceDefinition space, SpaceVersion version, string tenant, Modality modality, CancellationToken cancellationToken)
    {
        var key = (tenant, version.Id, modality);
        var now = Stopwatch.GetTimestamp();
        var entry = _labels.AddOrUpdate(key,
            _ => (now, LoadAsync(space, version, tenant, modality, cancellationToken)),
            (_, old) => Stopwatch.GetElapsedTime(old.Loaded) > Refresh || old.Labels.IsFaulted || old.Labels.IsCanceled
                ? (now, LoadAsync(space, version, tenant, modality, cancellationToken))
                : old);
        return entry.Labels;
    }

    private async Task<Label[]> LoadAsync(SpaceDefinition space, SpaceVersion version, string tenant, Modality modality, CancellationToken cancellationToken)
    {
        if (!space.Plans.ContainsKey(Modality.Text)) return []; // labels are embedded as text
        var template = _options.Templates.GetValueOrDefault(modality.ToName(), "{label}");
        var result = new List<Label>();
        foreach (var vocabulary in await store.ListAsync(tenant, cancellationToken))
        {
            var stored = await store.GetLabelEmbeddingsAsync(version, vocabulary.Id, modality.ToName(), cancellationToken);
            var have = stored.ToDictionary(e => e.Label, e => e.Vector.ToArray(), StringComparer.Ordinal);
            var missing = vocabulary.Labels.Where(l => !have.ContainsKey(l)).ToList();
            if (missing.Count > 0)
            {
                var embedded = await Task.WhenAll(missing.Select(async label =>
                    (label, (await embedder.EmbedAsync(space, MediaInput.FromText(template.Replace("{label}", label, StringComparison.Ordinal)), cancellationToken)).Vector)));
                await store.WriteLabelEmbeddingsAsync(version, vocabulary.Id,
                    embedded.Select(e => new LabelEmbedding(e.label, modality.ToName(), e.Vector)).ToList(), cancellationToken);
                foreach (var (label, v) in embedded) have[label] = v;
            }
            result.AddRange(vocabulary.Labels.Select(l => new Label(vocabulary.Id, l, have[l])));
        }
        return [.. result];
    }
}
