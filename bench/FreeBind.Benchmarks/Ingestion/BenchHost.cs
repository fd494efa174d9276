using System.Diagnostics.Metrics;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Ingestion;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Spaces;
using Microsoft.Extensions.DependencyInjection;
using FreeBind.Encoding;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FreeBind.Benchmarks.Ingestion;

/// <summary>
/// A worker host as `freebind run` composes it (encoding + the ingestion worker, or only the item pipeline; settings from
/// configuration keys), built in this process. Logs: warnings and errors to stderr; write
/// transactions are read from the worker's metrics (<see cref="WriteStats"/>).
/// </summary>
internal static class BenchHost
{
    public static IHost Build(IReadOnlyDictionary<string, string?> settings, bool runWorker, WriteStats writes)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = [],
        });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddProvider(new WarningsProvider());
        builder.AddEncoding();
        if (runWorker) builder.AddIngestionWorker();
        else builder.AddItemPipeline();
        var host = builder.Build();
        writes.Listen(host.Services.GetRequiredService<IMeterFactory>());
        return host;
    }

    private sealed class WarningsProvider : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new WarningsLogger(categoryName);

        public void Dispose()
        {
        }
    }

    private sealed class WarningsLogger(string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Warning)
                Console.Error.WriteLine($"    [{logLevel} {category}] {formatter(state, exception)}{(exception is null ? "" : " " + exception.Message)}");
        }
    }
}

/// <summary>
/// Encoder items and batches of a host (the <c>freebind.encoder.*</c> counters, totals since start)
/// for the models of a space.
/// </summary>
internal static class EncoderTotals
{
    public static (long Batches, long Items) Read(IMeterFactory meterFactory, SpaceDefinition space)
    {
        var models = space.Plans.Values.SelectMany(p => p.Experts.Select(e => space.EncoderOf(e, p.Modality).Model)).ToHashSet(StringComparer.Ordinal);
        long batches = 0, items = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == EncoderMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, meterFactory)
                && instrument.Name is EncoderMetrics.Items or EncoderMetrics.Batches)
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key != "model" || !models.Contains((string)tag.Value!)) continue;
                if (instrument.Name == EncoderMetrics.Items) items += value;
                else batches += value;
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return (batches, items);
    }
}

/// <summary>
/// The worker's write transactions, from its <c>freebind.ingestion.write.items</c> and
/// <c>freebind.ingestion.write.duration</c> instruments: how many, how large, how long.
/// </summary>
internal sealed class WriteStats : IDisposable
{
    private readonly Lock _gate = new();
    private readonly MeterListener _listener = new();
    private int _batches;
    private long _items;
    private double _ms;
    private int _largest;

    /// <summary>Starts reading the write instruments of the host with <paramref name="meterFactory"/>.</summary>
    public void Listen(IMeterFactory meterFactory)
    {
        _listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == IngestionMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, meterFactory)
                && instrument.Name is IngestionMetrics.WriteItems or IngestionMetrics.WriteDuration)
                l.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<int>((_, items, _, _) =>
        {
            lock (_gate)
            {
                _batches++;
                _items += items;
                _largest = Math.Max(_largest, items);
            }
        });
        _listener.SetMeasurementEventCallback<double>((_, ms, _, _) =>
        {
            lock (_gate) _ms += ms;
        });
        _listener.Start();
    }

    public void Dispose() => _listener.Dispose();

    /// <summary>Write transactions, items, total milliseconds and largest transaction since the last reset.</summary>
    public (int Batches, long Items, double Milliseconds, int Largest) Snapshot()
    {
        lock (_gate) return (_batches, _items, _ms, _largest);
    }

    public void Reset()
    {
        lock (_gate)
        {
            _batches = 0;
            _items = 0;
            _ms = 0;
            _largest = 0;
        }
    }
}
