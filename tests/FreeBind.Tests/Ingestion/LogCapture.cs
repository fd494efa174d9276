using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FreeBind.Tests.Ingestion;

/// <summary>Every log entry of an in-process host (add it with <see cref="AddTo"/>), for tests of what a user reads.</summary>
public sealed class LogCapture : ILoggerProvider
{
    public sealed record Entry(LogLevel Level, string Category, int EventId, string Message, Exception? Exception);

    public ConcurrentQueue<Entry> Entries { get; } = new();

    /// <summary>Adds the capture to a host being built (the harness's <c>configure</c> hook).</summary>
    public void AddTo(IHostApplicationBuilder builder) => builder.Services.AddSingleton<ILoggerProvider>(this);

    public List<Entry> With(int eventId) => [.. Entries.Where(e => e.EventId == eventId)];

    public List<Entry> AtLeast(LogLevel level) => [.. Entries.Where(e => e.Level >= level)];

    /// <summary>Polls until an entry matches; throws with every entry so far when none does in time.</summary>
    public async Task<Entry> WaitForAsync(Func<Entry, bool> match, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (DateTime.UtcNow < deadline)
        {
            if (Entries.FirstOrDefault(match) is { } found) return found;
            await Task.Delay(50);
        }
        throw new TimeoutException($"no log entry: {what}\n{string.Join('\n', Entries.Select(e => $"{e.Level} {e.EventId} {e.Message}"))}");
    }

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, Entries);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<Entry> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            entries.Enqueue(new Entry(logLevel, category, eventId.Id, formatter(state, exception), exception));
    }
}
