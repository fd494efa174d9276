using System.Collections.Concurrent;
using FreeBind.Encoding.Experts;
using FreeBind.Encoding.Fusion;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;

namespace FreeBind.Encoding;

/// <summary>An item embedded in a space: the atoms it was fused from, and its vector.</summary>
public sealed record Embedding(Modality Modality, IReadOnlyDictionary<string, float[]> Atoms, float[] Vector, string SpaceVersion);

/// <summary>
/// Identifies an atom independently of any space: the expert and the digest of the encoder model
/// that produced it. Two space versions that share an expert model share its atoms.
/// </summary>
public readonly record struct AtomKey(string Expert, string ModelDigest);

/// <summary>
/// Where a vector is born: media → preprocessing (per profile) → expert encoders (atoms) →
/// bonds (<see cref="FusionEngine"/>). Knows nothing of Kafka, SQL or Redis.
/// </summary>
/// <remarks>
/// Encode once, fuse many: <see cref="EncodeAsync"/> runs each encoder an item needs once for any
/// number of spaces (each preprocessing profile once too), and <see cref="FuseAsync(SpaceDefinition, Modality, IReadOnlyDictionary{AtomKey, float[]}, CancellationToken)"/>
/// turns those atoms into each space's vector.
/// </remarks>
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

    /// <summary>The atoms a space fuses a modality from (one per expert of its plan).</summary>
    /// <exception cref="ArgumentException">The space does not serve <paramref name="modality"/>.</exception>
    public static IReadOnlyList<AtomKey> AtomsFor(SpaceDefinition space, Modality modality) =>
        [.. PlanFor(space, modality).Experts.Select(e => new AtomKey(e, space.ModelDigest(e, modality)))];

    /// <summary>
    /// Encodes the item for every space in <paramref name="spaces"/>: each atom they need and
    /// <paramref name="known"/> lacks is computed once (each preprocessing profile runs once).
    /// </summary>
    /// <param name="spaces">Spaces the item will be fused into; each must serve the input's modality.</param>
    /// <param name="input">The media.</param>
    /// <param name="known">Atoms already at hand (e.g. from a cache); not computed again.</param>
    /// <param name="cancellationToken">Cancels the work.</param>
    /// <returns>The known atoms plus the computed ones.</returns>
    public async Task<IReadOnlyDictionary<AtomKey, float[]>> EncodeAsync(IReadOnlyList<SpaceDefinition> spaces, MediaInput input,
        IReadOnlyDictionary<AtomKey, float[]>? known = null, CancellationToken cancellationToken = default)
    {
        var atoms = known is null ? new Dictionary<AtomKey, float[]>() : new Dictionary<AtomKey, float[]>(known);
        var byProfile = new Dictionary<string, Task<PreprocessedItem>>(StringComparer.Ordinal);
        var pending = new Dictionary<AtomKey, Task<float[]>>();
        foreach (var space in spaces)
        {
            foreach (var key in AtomsFor(space, input.Modality))
            {
                if (atoms.ContainsKey(key) || pending.ContainsKey(key)) continue;
                var spec = space.EncoderOf(key.Expert, input.Modality);
                var profile = PreprocessorKey(space, spec);
                if (!byProfile.TryGetValue(profile, out var preprocessed))
                {
                    var preprocessor = Preprocessor(space, spec, profile);
                    byProfile[profile] = preprocessed = Task.Run(() => preprocessor.Process(input), cancellationToken);
                }
                pending[key] = EncodeOneAsync(space, key.Expert, input.Modality, preprocessed, cancellationToken);
            }
        }
        foreach (var (key, task) in pending) atoms[key] = await task.ConfigureAwait(false);
        return atoms;
    }

    /// <summary>Fuses a space's vector from atoms that include every atom <see cref="AtomsFor"/> names for it.</summary>
    /// <exception cref="ArgumentException">An atom the space needs is missing.</exception>
    public Task<float[]> FuseAsync(SpaceDefinition space, Modality modality, IReadOnlyDictionary<AtomKey, float[]> atoms, CancellationToken cancellationToken = default)
    {
        var byExpert = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var key in AtomsFor(space, modality))
            byExpert[key.Expert] = atoms.TryGetValue(key, out var atom)
                ? atom
                : throw new ArgumentException($"space '{space.Name}' needs the {modality.ToName()} atom of expert '{key.Expert}' (model {key.ModelDigest})");
        return fusion.FuseAsync(space, modality, byExpert, cancellationToken);
    }

    /// <summary>Media → atoms → the space's vector.</summary>
    public async Task<Embedding> EmbedAsync(SpaceDefinition space, MediaInput input, CancellationToken cancellationToken = default)
    {
        var atoms = await EncodeAsync([space], input, cancellationToken: cancellationToken).ConfigureAwait(false);
        var vector = await FuseAsync(space, input.Modality, atoms, cancellationToken).ConfigureAwait(false);
        return new Embedding(input.Modality, atoms.ToDictionary(a => a.Key.Expert, a => a.Value, StringComparer.Ordinal), vector, space.Version);
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

    private async Task<float[]> EncodeOneAsync(SpaceDefinition space, string expert, Modality modality, Task<PreprocessedItem> preprocessed, CancellationToken cancellationToken) =>
        await encoders.EncodeAsync(space, expert, modality, await preprocessed.ConfigureAwait(false), cancellationToken).ConfigureAwait(false);

    private IPreprocessor Preprocessor(SpaceDefinition space, ExpertModalitySpec spec, string key) =>
        _preprocessors.GetOrAdd(key, _ => PreprocessorRegistry.Create(spec.Profile, spec.Tokenizer.Select(space.ResolvePath).ToList(), preprocessing));

    private static string PreprocessorKey(SpaceDefinition space, ExpertModalitySpec spec) =>
        spec.Profile + "|" + string.Join("|", spec.Tokenizer.Select(space.ResolvePath));

    private static ModalityPlan PlanFor(SpaceDefinition space, Modality modality) =>
        space.Plans.TryGetValue(modality, out var plan)
            ? plan
            : throw new ArgumentException($"space '{space.Name}' does not serve modality {modality.ToName()}");
}
