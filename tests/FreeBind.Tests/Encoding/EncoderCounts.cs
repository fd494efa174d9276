using System.Diagnostics.Metrics;
using FreeBind.Encoding.Execution;

namespace FreeBind.Tests.Encoding;

/// <summary>Reads a host's <see cref="EncoderMetrics"/> (totals since start) as an operator's collector would.</summary>
internal static class EncoderCounts
{
    /// <summary>Items run per model file, as the <c>freebind.encoder.items</c> counter of the host with <paramref name="meterFactory"/> reports them now.</summary>
    public static Dictionary<string, long> Items(IMeterFactory meterFactory)
    {
        var items = new Dictionary<string, long>(StringComparer.Ordinal);
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == EncoderMetrics.MeterName && instrument.Name == EncoderMetrics.Items && ReferenceEquals(instrument.Meter.Scope, meterFactory))
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "model") items[(string)tag.Value!] = value;
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return items;
    }
}
