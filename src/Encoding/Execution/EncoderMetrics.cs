using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace FreeBind.Encoding.Execution;

/// <summary>
/// The encoders' instruments on the process's <c>FreeBind.Pipeline</c> meter (one per host, made by
/// its <see cref="IMeterFactory"/>): items and batches each encoder model ran, tagged with the model
/// file (<c>model</c>, relative to the model root), <c>expert</c> and <c>modality</c>. Observable
/// counters: a reader gets the totals since start whenever it asks.
/// </summary>
public sealed class EncoderMetrics
{
    public const string MeterName = "FreeBind.Pipeline";

    /// <summary>Items an encoder model ran (an item with several clips counts once).</summary>
    public const string Items = "freebind.encoder.items";

    /// <summary>Batches an encoder model ran (one <c>Run</c> each); items / batches is the micro-batching's yield.</summary>
    public const string Batches = "freebind.encoder.batches";

    private readonly ConcurrentDictionary<OnnxModel, KeyValuePair<string, object?>[]> _models = new(ReferenceEqualityComparer.Instance);

    public EncoderMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        meter.CreateObservableCounter(Items, () => Observe(m => m.Batcher.Counters.Items), "{item}", "Items run by an encoder model");
        meter.CreateObservableCounter(Batches, () => Observe(m => m.Batcher.Counters.Batches), "{batch}", "Batches run by an encoder model");
    }

    internal void Track(OnnxModel model, string file, string expert, Modality modality) =>
        _models[model] = [new("model", file), new("expert", expert), new("modality", modality.ToName())];

    private IEnumerable<Measurement<long>> Observe(Func<OnnxModel, long> value) =>
        _models.Select(m => new Measurement<long>(value(m.Key), m.Value));
}
