using FreeBind.Consumers.Ingestion;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;

namespace FreeBind.Consumers.Resilience;

/// <summary>
/// Every retry of the worker, with one backoff (exponential from 100 ms, jittered, at most 5 s):
/// writes while Postgres is away, produces while Kafka is, items whose remote source or whose
/// code failed. Each pipeline differs only in what it retries and how often.
/// </summary>
public sealed partial class Retries(IOptions<IngestionOptions> options, IngestionMetrics metrics, ILogger<Retries> logger)
{
    private readonly IngestionOptions _options = options.Value;

    /// <summary>Postgres writes and reads: transient failures until they pass (or the work is cancelled).</summary>
    public ResiliencePipeline Storage { get; } = Build("storage", (e, _) => Failures.Classify(e) is FailureKind.Transient or FailureKind.Deployment, metrics, logger);

    /// <summary>
    /// A batch whose write target's table vanished (a version dropped since the targets were read, or
    /// a table dropped by hand): the targets are re-read and the batch written again, until it passes.
    /// </summary>
    public ResiliencePipeline StaleTarget { get; } = Build("stale-target", (e, _) => Failures.Classify(e) == FailureKind.StaleTarget, metrics, logger);

    /// <summary>The LISTEN session for space version changes: reconnected while Postgres is away, until the worker stops.</summary>
    public ResiliencePipeline Listen { get; } = Build("listen", (e, _) => Failures.Classify(e) == FailureKind.Transient, metrics, logger);

    /// <summary>Kafka produce calls: every non-fatal error until it passes, except a message too large (it never will).</summary>
    public ResiliencePipeline Produce { get; } = Build("produce", (e, _) => e is Confluent.Kafka.KafkaException { Error.IsFatal: false } k
                                                                          && k.Error.Code != Confluent.Kafka.ErrorCode.MsgSizeTooLarge, metrics, logger);

    /// <summary>
    /// One item through the pipeline: infrastructure failures until they pass, a remote source
    /// <see cref="IngestionOptions.RemoteAttempts"/> times, an unforeseen failure
    /// <see cref="IngestionOptions.UnforeseenAttempts"/> times; refusals not at all.
    /// </summary>
    public ResiliencePipeline Item => _item ??= Build("item", (e, attempt) => e switch
    {
        Contracts.RejectedException or FreeBind.Encoding.Preprocessing.MediaException or FreeBind.Encoding.ModelOutputException => false,
        TimeoutException or HttpRequestException => attempt + 1 < _options.RemoteAttempts,
        _ => Failures.Classify(e) switch
        {
            FailureKind.Transient or FailureKind.Deployment or FailureKind.StaleTarget => true,
            FailureKind.ItemRefused => false,
            _ => attempt + 1 < _options.UnforeseenAttempts,
        },
    }, metrics, logger);

    private ResiliencePipeline? _item;

    /// <summary>
    /// Start-up against a dependency that may not be up yet (a deployment starting every service at
    /// once): failures <paramref name="unavailable"/> accepts are retried with the same backoff until
    /// <paramref name="timeout"/> has passed since the first try; the last one then escapes.
    /// </summary>
    /// <param name="dependency">Named in the wait's log lines ("Waiting for Kafka").</param>
    /// <param name="timeout">How long to keep trying.</param>
    /// <param name="unavailable">True for a failure that means "not reachable (yet)".</param>
    public ResiliencePipeline Startup(string dependency, TimeSpan timeout, Func<Exception, bool> unavailable)
    {
        var started = TimeProvider.System.GetTimestamp();
        TimeSpan? logged = null;
        return new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e and not OperationCanceledException
                                                        && unavailable(e) && TimeProvider.System.GetElapsedTime(started) < timeout),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = BaseDelay,
            MaxDelay = MaxDelay,
            OnRetry = args =>
            {
                metrics.Retried("startup");
                // One line at once, then one every 10 s while the wait goes on.
                var elapsed = TimeProvider.System.GetElapsedTime(started);
                if (logged is null || elapsed - logged >= TimeSpan.FromSeconds(10))
                {
                    logged = elapsed;
                    LogWaiting(logger, dependency, args.AttemptNumber + 1, args.Outcome.Exception!.Message);
                }
                return ValueTask.CompletedTask;
            },
        }).Build();
    }

    /// <summary>
    /// Start-up work against Postgres (<see cref="Startup"/> with Postgres's outages as
    /// <see cref="Failures"/> classifies them); when it stays away, one sentence naming the server.
    /// </summary>
    /// <exception cref="FreeBind.Persistence.DatabaseUnavailableException">Postgres stayed unreachable for <see cref="FreeBind.Persistence.PersistenceOptions.StartupTimeout"/>.</exception>
    public async Task<T> PostgresStartupAsync<T>(FreeBind.Persistence.PersistenceOptions persistence, Func<CancellationToken, Task<T>> action, CancellationToken cancellationToken)
    {
        try
        {
            return await Startup("Postgres", persistence.StartupTimeout, e => Failures.Classify(e) == FailureKind.Transient)
                .ExecuteAsync(async token => await action(token), cancellationToken);
        }
        catch (Exception e) when (Failures.Classify(e) == FailureKind.Transient && !cancellationToken.IsCancellationRequested)
        {
            throw FreeBind.Persistence.DatabaseStartup.Unavailable(persistence.ConnectionString, persistence.StartupTimeout, e);
        }
    }

    private static readonly TimeSpan BaseDelay = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(5);

    /// <summary>The pipeline for anything else, retrying what <paramref name="shouldRetry"/> (exception, attempt from 0) allows.</summary>
    public ResiliencePipeline For(string operation, Func<Exception, int, bool> shouldRetry) => Build(operation, shouldRetry, metrics, logger);

    private static ResiliencePipeline Build(string operation, Func<Exception, int, bool> shouldRetry, IngestionMetrics metrics, ILogger logger) =>
        new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e and not OperationCanceledException
                                                        && !args.Context.CancellationToken.IsCancellationRequested
                                                        && shouldRetry(e, args.AttemptNumber)),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = BaseDelay,
            MaxDelay = MaxDelay,
            OnRetry = args =>
            {
                metrics.Retried(operation);
                // The first tries are routine (a failover, a slow source); from the fourth on, every one is worth a line.
                if (args.AttemptNumber < 3) LogRetryDebug(logger, operation, args.AttemptNumber + 1, args.Outcome.Exception!.Message);
                else LogRetry(logger, operation, args.AttemptNumber + 1, args.Outcome.Exception!.Message);
                return ValueTask.CompletedTask;
            },
        }).Build();

    [LoggerMessage(EventId = 5102, Level = LogLevel.Warning, Message = "Waiting for {Dependency} (attempt {Attempt}): {Reason}")]
    private static partial void LogWaiting(ILogger logger, string dependency, int attempt, string reason);

    [LoggerMessage(EventId = 5100, Level = LogLevel.Debug, Message = "Retrying {Operation} (attempt {Attempt}): {Reason}")]
    private static partial void LogRetryDebug(ILogger logger, string operation, int attempt, string reason);

    [LoggerMessage(EventId = 5101, Level = LogLevel.Warning, Message = "Retrying {Operation} (attempt {Attempt}): {Reason}")]
    private static partial void LogRetry(ILogger logger, string operation, int attempt, string reason);
}
