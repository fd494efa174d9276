using System.Collections.Concurrent;
using System.Numerics.Tensors;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;

namespace FreeBind.Encoding.Experts;

/// <summary>
/// The expert encoders: one session per model file, created and warmed on first use (or by
/// <see cref="Prepare"/> at start), each behind its own micro-batcher. Produces atoms: the raw
/// expert embedding of an item, its clips averaged (ImageBind audio).
/// </summary>
/// <param name="sessions">Creates the sessions.</param>
/// <param name="metrics">Where each model's items and batches are observed (none outside a host).</param>
public sealed class ExpertEncoders(SessionFactory sessions, EncoderMetrics? metrics = null) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<OnnxModel>> _models = new(StringComparer.Ordinal);

    public void Prepare(SpaceDefinition space)
    {
        foreach (var plan in space.Plans.Values)
            foreach (var expert in plan.Experts)
                Model(space, expert, plan.Modality);
    }

    public OnnxModel Model(SpaceDefinition space, string expert, Modality modality)
    {
        if (space.Use != SpaceUse.Embed)
            throw new InvalidOperationException($"space '{space.Name}' was loaded for fusion only (its encoder files were not checked); load it with SpaceUse.Embed to encode media");
        var spec = space.EncoderOf(expert, modality);
        var path = space.ResolvePath(spec.Model);
        var dim = space.Manifest.Experts[expert].Dimension;
        return _models.GetOrAdd(path, p => new Lazy<OnnxModel>(() =>
        {
            var model = new OnnxModel($"expert '{expert}' {modality.ToName()} encoder ({spec.Model})", sessions.Create(p), sessions.Options);
            // The width is checked here for files that leave it symbolic (validation could not read it).
            var width = model.WarmUp();
            if (width != dim)
            {
                model.DisposeAsync().AsTask().GetAwaiter().GetResult();
                throw new InvalidDataException($"{model.Label}: outputs {width} values per row, but the manifest says expert '{expert}' is {dim}-d");
            }
            metrics?.Track(model, spec.Model, expert, modality);
            return model;
        })).Value;
    }

    /// <summary>Encodes one preprocessed item into the expert's atom.</summary>
    public async Task<float[]> EncodeAsync(SpaceDefinition space, string expert, Modality modality, PreprocessedItem item, CancellationToken cancellationToken = default)
    {
        var spec = space.EncoderOf(expert, modality);
        var dim = space.Manifest.Experts[expert].Dimension;
        var rows = item.Inputs[0].Rows;
        if (rows != spec.Clips)
            throw new ArgumentException($"expert '{expert}' {modality.ToName()} expects {spec.Clips} row(s) per item (clips), the preprocessed item has {rows}");
        var model = Model(space, expert, modality);
        var output = await model.RunAsync(item.Inputs, cancellationToken).ConfigureAwait(false);
        if (output.Length != rows * dim)
            throw new ModelOutputException(model.Label, $"returned {output.Length / Math.Max(rows, 1)} values per row, the manifest says {dim}");
        ModelOutputException.ThrowIfNotFinite(output, model.Label);
        if (rows == 1) return output;
        var atom = new float[dim];
        for (var r = 0; r < rows; r++) TensorPrimitives.Add(atom, output.AsSpan(r * dim, dim), atom);
        TensorPrimitives.Divide(atom, rows, atom);
        return atom;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var m in _models.Values)
            if (m.IsValueCreated) await m.Value.DisposeAsync().ConfigureAwait(false);
    }
}
