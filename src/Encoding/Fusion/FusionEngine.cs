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
/// <remarks>
/// Two ways in: <see cref="FuseAsync"/> for one item (live ingestion; concurrent items meet in
/// each mixture's micro-batcher) and <see cref="FuseBatch"/> for many items at once (re-fusion
/// backfills, <c>freebind fuse</c>): the batch size is then the caller's, and every bond step is
/// one batched run.
/// </remarks>
public sealed partial class FusionEngine(SessionFactory sessions, ILogger<FusionEngine> logger) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<CompiledMixture>> _mixtures = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<ProjectorWeights>> _projectors = new(StringComparer.Ordinal);

    // Per bond step (by reference), the mixture it runs: the per-item path skips resolving file paths.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<BondStep, CompiledMixture> _byStep = new();

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
        var plan = Plan(space, modality);
        var state = VectorMath.Normalize(Atom(space, atoms, plan.BaseExpert, modality));
        foreach (var step in plan.Steps)
        {
            var row = new float[step.Mixture.Count][];
            for (var i = 0; i < row.Length; i++)
                row[i] = step.Mixture[i].AtomExpert is { } expert ? VectorMath.Normalize(Atom(space, atoms, expert, modality)) : state;
            var mixture = Mixture(space, step);
            var projected = await mixture.RunAsync(row, cancellationToken).ConfigureAwait(false);
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

    /// <summary>
    /// Fuses many items of one modality: every bond step runs once over all of them (its rows split
    /// over the cores on the CPU). Equal to <see cref="FuseAsync"/> item by item.
    /// </summary>
    /// <exception cref="FusionInputException">An item's atoms cannot be used (missing, wrong size, not finite); nothing is fused.</exception>
    public float[][] FuseBatch(SpaceDefinition space, Modality modality, IReadOnlyList<IReadOnlyDictionary<string, float[]>> items, CancellationToken cancellationToken = default)
    {
        var plan = Plan(space, modality);
        var count = items.Count;
        if (count == 0) return [];
        var width = space.Manifest.Experts[plan.BaseExpert].Dimension;
        var state = Normalized(space, items, plan.BaseExpert, modality);
        foreach (var step in plan.Steps)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var mixture = Mixture(space, step);
            var inputs = new float[step.Mixture.Count][];
            for (var i = 0; i < inputs.Length; i++)
                inputs[i] = step.Mixture[i].AtomExpert is { } expert ? Normalized(space, items, expert, modality) : state;
            var projected = new float[count * mixture.OutputWidth];
            mixture.Run(inputs, count, projected);
            for (var r = 0; r < count; r++)
                ModelOutputException.ThrowIfNotFinite(projected.AsSpan(r * mixture.OutputWidth, mixture.OutputWidth), $"{mixture.Label} (item {r})");
            var blendWith = step.Blend switch
            {
                BlendKind.None => null,
                BlendKind.ExpertAtom => Normalized(space, items, step.BlendExpert!, modality),
                BlendKind.CurrentState => state,
                _ => throw new InvalidOperationException($"unknown blend {step.Blend}"),
            };
            // Both blends stay in the step's output space: the expert atom and the current state are that wide.
            width = mixture.OutputWidth;
            if (blendWith is not null)
                for (var r = 0; r < count; r++)
                {
                    var row = projected.AsSpan(r * width, width);
                    VectorMath.Blend(row, blendWith.AsSpan(r * width, width), step.Factor, row);
                }
            state = projected;
        }
        var vectors = new float[count][];
        for (var r = 0; r < count; r++) vectors[r] = state.AsSpan(r * width, width).ToArray();
        return vectors;
    }

    private static ModalityPlan Plan(SpaceDefinition space, Modality modality) =>
        space.Plans.TryGetValue(modality, out var plan)
            ? plan
            : throw new ArgumentException($"space '{space.Name}' does not serve modality {modality.ToName()}");

    // The items' atoms of one expert, each normalised, as rows of one matrix.
    private static float[] Normalized(SpaceDefinition space, IReadOnlyList<IReadOnlyDictionary<string, float[]>> items, string expert, Modality modality)
    {
        var dim = space.Manifest.Experts[expert].Dimension;
        var rows = new float[items.Count * dim];
        for (var r = 0; r < items.Count; r++)
        {
            float[] atom;
            try
            {
                atom = Atom(space, items[r], expert, modality);
            }
            catch (ArgumentException e)
            {
                throw new FusionInputException(r, e.Message);
            }
            VectorMath.Normalize(atom, rows.AsSpan(r * dim, dim));
        }
        return rows;
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

    private CompiledMixture Mixture(SpaceDefinition space, BondStep step) =>
        _byStep.GetValue(step, s => CompileMixture(space, s));

    private CompiledMixture CompileMixture(SpaceDefinition space, BondStep step)
    {
        var files = step.Mixture.Select(m => space.Manifest.ProjectorSets[m.ProjectorSet].Files.Select(space.ResolvePath).ToList()).ToList();
        var key = string.Join("|", files.Select(f => string.Join(",", f)));
        var label = $"projector mixture {string.Join(" ∥ ", step.Mixture.Select(m => m.ProjectorSet))}";
        return _mixtures.GetOrAdd(key, _ => new Lazy<CompiledMixture>(() =>
        {
            var weights = files.Select(set => (IReadOnlyList<ProjectorWeights>)set.Select(Projector).ToList()).ToList();
            var model = Compile(sessions, label, weights);
            LogMixture(logger, label, weights.Sum(w => w.Count), sessions.ActiveProvider ?? "?");
            return model;
        })).Value;
    }

    /// <summary>
    /// Builds the mixture graph and its session. On the CPU the session is single-threaded and a
    /// batch is split into concurrent runs, up to <see cref="OnnxOptions.IntraOpThreads"/> (0: one per core).
    /// </summary>
    internal static CompiledMixture Compile(SessionFactory sessions, string label, IReadOnlyList<IReadOnlyList<ProjectorWeights>> weights)
    {
        var session = sessions.CreateSingleThreaded(MixtureGraphBuilder.Build(weights));
        var parallelism = sessions.ActiveProvider != "CPU" ? 1
            : sessions.Options.IntraOpThreads > 0 ? sessions.Options.IntraOpThreads : Environment.ProcessorCount;
        return new CompiledMixture(label, session, parallelism, sessions.Options);
    }

    private ProjectorWeights Projector(string path) =>
        _projectors.GetOrAdd(path, p => new Lazy<ProjectorWeights>(() =>
        {
            var weights = ProjectorWeights.FromGraph(OnnxGraph.Load(p), p);
            if (sessions.Options.VerifyProjectors) ProjectorVerifier.Verify(weights, p, sessions);
            return weights;
        })).Value;

    [LoggerMessage(Level = LogLevel.Debug, Message = "Compiled {Label} ({Count} projectors, batch-norm folded, {Provider})")]
    private static partial void LogMixture(ILogger logger, string label, int count, string provider);

    public async ValueTask DisposeAsync()
    {
        foreach (var m in _mixtures.Values)
            if (m.IsValueCreated) await m.Value.DisposeAsync().ConfigureAwait(false);
    }
}
