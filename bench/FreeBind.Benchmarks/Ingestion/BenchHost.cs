using FreeBind.Consumers.Hosting;
using FreeBind.Encoding;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FreeBind.Benchmarks.Ingestion;

/// <summary>
/// A worker host as `freebind run` composes it (encoding + the ingestion worker, or only the item pipeline; settings from
/// configuration keys), built in this process. Logs: warnings and errors to stderr; the store's
/// per-batch write records are captured for the diagnostics instead of printed.
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
        builder.Logging.AddFilter(WriteStats.Category, LogLevel.Debug);
        builder.Logging.AddProvider(new CaptureProvider(writes));
        builder.AddEncoding();
        if (runWorker) builder.AddIngestionWorker();
        else builder.AddItemPipeline();
        return builder.Build();
    }

    private sealed class CaptureProvider(WriteStats writes) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new CaptureLogger(categoryName, writes);

        public void Dispose()
        {
        }
    }

    private sealed class CaptureLogger(string category, WriteStats writes) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (category == WriteStats.Category && eventId.Id == WriteStats.BatchWrittenEvent && state is IReadOnlyList<KeyValuePair<string, object?>> fields)
            {
                var items = fields.FirstOrDefault(f => f.Key == "Items").Value is int n ? n : 0;
                var ms = fields.FirstOrDefault(f => f.Key == "ElapsedMs").Value is double d ? d : 0;
                writes.Add(items, ms);
                return;
            }
            if (logLevel >= LogLevel.Warning)
                Console.Error.WriteLine($"    [{logLevel} {category}] {formatter(state, exception)}{(exception is null ? "" : " " + exception.Message)}");
        }
    }
}

/// <summary>Write batches the <c>EmbeddingStore</c> reported (event 4020): how many, how large, how long.</summary>
internal sealed class WriteStats
{
    public const string Category = "FreeBind.Persistence.Embeddings.EmbeddingStore";
    public const int BatchWrittenEvent = 4020;

    private readonly Lock _gate = new();
    private int _batches;
    private long _items;
    private double _ms;
    private int _largest;
    public void Add(int items, double ms)
    {
        lock (_gate)
        {
            _batches++;
            _items += items;
            _ms += ms;
            _largest = Math.Max(_largest, items);
        }
    }

    /// <summary>Batches, items, total milliseconds inside the store and largest batch since the last reset.</summary>
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
