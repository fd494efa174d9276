using System.Collections.Concurrent;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Onnx;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using Microsoft.Extensions.Logging;

namespace FreeBind.Encoding.Fusion;

/// <summary>
/// Turns atoms (expert embeddings) into space vectors through the bonds of a
/// <see cref="SpaceDefinition"/>. Never runs an encoder. Mixtures are compiled once per set of
/// projector files and shared by every space and factor choice that uses them, so changing
/// factors at inference time costs nothing.
/// </summary>
public sealed partial class FusionEngine(SessionFactory sessions, ILogger<FusionEngine> logger) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<OnnxModel>> _mixtures = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<ProjectorWeights>> _projectors = new(StringComparer.Ordinal);

    // Per bond step (by reference), the mixture it runs: the per-item path skips resolving file paths.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<BondStep, OnnxModel> _byStep = new();

    /// <summary>Compiles every mixture the space needs (start-up, so the first item is not slow).</summary>
    public void Prepare(SpaceDefinition space)
    {
        foreach (var plan in space.Plans.Values)
            foreach (var step in plan.Steps)
                Mixture(space, step);
    }

    /// <summary>Fuses one item's atoms into a vector of the space.</summary>
    public async Task<float[]> FuseAsync(SpaceDefinition space, Modality modality, IReadOnlyDictionary<string, float[]> atoms, CancellationToken cancellationToken = default)
    {
        if (!space.Plans.TryGetValue(modality, out var plan))
            throw new ArgumentException($"space '{space.Name}' does not serve modality {modality.ToName()}");
        var state = VectorMath.Normalize(Atom(space, atoms, plan.BaseExpert, modality));
        foreach (var step in plan.Steps)
        {
            var inputs = new List<ModelTensor>(step.Mixture.Count);
            for (var i = 0; i < step.Mixture.Count; i++)
            {
                var source = step.Mixture[i].AtomExpert is { } expert ? VectorMath.Normalize(Atom(space, atoms, expert, modality)) : state;
                inputs.Add(ModelTensor.Float32(MixtureGraphBuilder.InputName(i), [1, source.Length], source));
            }
            var mixture = Mixture(space, step);
            var projected = await mixture.RunAsync(inputs, cancellationToken).ConfigureAwait(false);
            ModelOutputException.ThrowIfNotFinite(projected, mixture.Label);
            state = step.Blend switch
            {
                BlendKind.None => projected,
                BlendKind.ExpertAtom => VectorMath.Blend(projected, VectorMath.Normalize(Atom(space, atoms, step.BlendExpert!, modality)), step.Factor),
                BlendKind.CurrentState => VectorMath.Blend(projected, state, step.Factor),
                _ => throw new InvalidOperationException($"unknown blend {step.Blend}"),
            };
        }
        return state;
    }

    private static float[] Atom(SpaceDefinition space, IReadOnlyDictionary<string, float[]> atoms, string expert, Modality modality)
    {
        if (!atoms.TryGetValue(expert, out var atom))
            throw new ArgumentException($"space '{space.Name}' needs the '{expert}' atom for {modality.ToName()}, but the item has {(atoms.Count == 0 ? "none" : string.Join(", ", atoms.Keys))}");
        var dim = space.Manifest.Experts[expert].Dimension;
        if (atom.Length != dim)
            throw new ArgumentException($"atom '{expert}' has {atom.Length} values, the expert is {dim}-d");
        // An atom is input here, not a model's output: a non-finite one is the caller's to fix.
        for (var i = 0; i < atom.Length; i++)
            if (!float.IsFinite(atom[i]))
                throw new ArgumentException($"atom '{expert}' ({modality.ToName()}) element {i} is {atom[i]}: atoms must be finite");
        return atom;
    }

    private OnnxModel Mixture(SpaceDefinition space, BondStep step) =>
        _byStep.GetValue(step, s => CompileMixture(space, s));

    private OnnxModel CompileMixture(SpaceDefinition space, BondStep step)
    {
        var files = step.Mixture.Select(m => space.Manifest.ProjectorSets[m.ProjectorSet].Files.Select(space.ResolvePath).ToList()).ToList();
        var key = string.Join("|", files.Select(f => string.Join(",", f)));
        var label = $"projector mixture {string.Join(" ∥ ", step.Mixture.Select(m => m.ProjectorSet))}";
        return _mixtures.GetOrAdd(key, _ => new Lazy<OnnxModel>(() =>
        {
            var weights = files.Select(set => (IReadOnlyList<ProjectorWeights>)set.Select(Projector).ToList()).ToList();
            var model = new OnnxModel(label, sessions.Create(MixtureGraphBuilder.Build(weights)), sessions.Options);
            LogMixture(logger, label, weights.Sum(w => w.Count));
            return model;
        })).Value;
    }

    private ProjectorWeights Projector(string path) =>
        _projectors.GetOrAdd(path, p => new Lazy<ProjectorWeights>(() =>
        {
            var weights = ProjectorWeights.FromGraph(OnnxGraph.Load(p), p);
            if (sessions.Options.VerifyProjectors) ProjectorVerifier.Verify(weights, p, sessions);
            return weights;
        })).Value;

    [LoggerMessage(Level = LogLevel.Debug, Message = "Compiled {Label} ({Count} projectors, batch-norm folded)")]
    private static partial void LogMixture(ILogger logger, string label, int count);

    public async ValueTask DisposeAsync()
    {
        foreach (var m in _mixtures.Values)
            if (m.IsValueCreated) await m.Value.DisposeAsync().ConfigureAwait(false);
    }
}
