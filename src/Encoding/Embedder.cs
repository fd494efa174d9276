using System.Collections.Concurrent;
using FreeBind.Encoding.Experts;
using FreeBind.Encoding.Fusion;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;

namespace FreeBind.Encoding;

/// <summary>An item embedded in a space: the atoms it was fused from, and its vector.</summary>
public sealed record Embedding(Modality Modality, IReadOnlyDictionary<string, float[]> Atoms, float[] Vector, string SpaceVersion);

/// <summary>
/// Where a vector is born: media → preprocessing (per profile) → expert encoders (atoms) →
/// bonds (<see cref="FusionEngine"/>). Knows nothing of Kafka, SQL or Redis.
/// </summary>
public sealed class Embedder(ExpertEncoders encoders, FusionEngine fusion, PreprocessingOptions preprocessing)
{
    private readonly ConcurrentDictionary<string, IPreprocessor> _preprocessors = new(StringComparer.Ordinal);

    public FusionEngine Fusion => fusion;

    /// <summary>Loads every session the space needs and compiles its mixtures.</summary>
    public void Prepare(SpaceDefinition space)
    {
        encoders.Prepare(space);
        fusion.Prepare(space);
    }

    public async Task<Embedding> EmbedAsync(SpaceDefinition space, MediaInput input, CancellationToken cancellationToken = default)
    {
        var plan = PlanFor(space, input.Modality);
        var byProfile = new Dictionary<string, Task<PreprocessedItem>>(StringComparer.Ordinal);
        var items = new Dictionary<string, Task<PreprocessedItem>>(StringComparer.Ordinal);
        foreach (var expert in plan.Experts)
        {
            var spec = space.EncoderOf(expert, input.Modality);
            var key = PreprocessorKey(space, spec);
            if (!byProfile.TryGetValue(key, out var task))
            {
                var preprocessor = Preprocessor(space, spec, key);
                byProfile[key] = task = Task.Run(() => preprocessor.Process(input), cancellationToken);
            }
            items[expert] = task;
        }
        var preprocessed = new Dictionary<string, PreprocessedItem>(StringComparer.Ordinal);
        foreach (var (expert, task) in items) preprocessed[expert] = await task.ConfigureAwait(false);
        return await EmbedPreprocessedAsync(space, input.Modality, preprocessed, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Embeds model-ready tensors (one item per expert), skipping preprocessing.</summary>
    public async Task<Embedding> EmbedPreprocessedAsync(SpaceDefinition space, Modality modality, IReadOnlyDictionary<string, PreprocessedItem> byExpert, CancellationToken cancellationToken = default)
    {
        var plan = PlanFor(space, modality);
        var tasks = plan.Experts.ToDictionary(e => e, e => byExpert.TryGetValue(e, out var item)
            ? encoders.EncodeAsync(space, e, modality, item, cancellationToken)
            : throw new ArgumentException($"space '{space.Name}' needs expert '{e}' input for {modality.ToName()}"));
        var atoms = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (expert, task) in tasks) atoms[expert] = await task.ConfigureAwait(false);
        var vector = await fusion.FuseAsync(space, modality, atoms, cancellationToken).ConfigureAwait(false);
        return new Embedding(modality, atoms, vector, space.Version);
    }

    /// <summary>The preprocessor an expert's encoder needs (cached per profile and tokenizer files).</summary>
    public IPreprocessor Preprocessor(SpaceDefinition space, ExpertModalitySpec spec) => Preprocessor(space, spec, PreprocessorKey(space, spec));

    private IPreprocessor Preprocessor(SpaceDefinition space, ExpertModalitySpec spec, string key) =>
        _preprocessors.GetOrAdd(key, _ => PreprocessorRegistry.Create(spec.Profile, spec.Tokenizer.Select(space.ResolvePath).ToList(), preprocessing));

    private static string PreprocessorKey(SpaceDefinition space, ExpertModalitySpec spec) =>
        spec.Profile + "|" + string.Join("|", spec.Tokenizer.Select(space.ResolvePath));

    private static ModalityPlan PlanFor(SpaceDefinition space, Modality modality) =>
        space.Plans.TryGetValue(modality, out var plan)
            ? plan
            : throw new ArgumentException($"space '{space.Name}' does not serve modality {modality.ToName()}");
}
