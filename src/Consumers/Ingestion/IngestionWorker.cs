using System.Threading.Channels;
using Confluent.Kafka;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Kafka;
using FreeBind.Consumers.Pipeline;
using FreeBind.Consumers.Resilience;
using FreeBind.Consumers.Spaces;
using FreeBind.Persistence.Embeddings;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// The main job (<c>freebind run</c>): a Kafka consumer group member made of three parts — the
/// <see cref="ConsumeLoop"/> (consume, process, back-pressure), the <see cref="BatchWriter"/>
/// (durable writes into the current write targets, then offsets) and the <see cref="ResultPublisher"/>
/// (output events, dead letters). This class starts them, stops them gracefully (in-flight work is
/// finished first), and turns a fatal failure into a prompt stop with one clear line and
/// <see cref="Fault"/> set, so <c>freebind run</c> exits non-zero.
/// </summary>
public sealed partial class IngestionWorker(
    IOptions<IngestionOptions> options, IOptions<KafkaOptions> kafkaOptions, KafkaClients kafka, WriteTargets targets, TargetWatcher watcher,
    ItemPipeline pipeline, MessageProcessor processor, EmbeddingStore store, Retries retries, IngestionMetrics metrics,
    IHostApplicationLifetime lifetime, ILogger<IngestionWorker> logger) : BackgroundService
{
    private readonly TaskCompletionSource<Exception> _fatal = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Why the worker stopped on its own (null after a normal stop).</summary>
    public Exception? Fault => _fatal.Task.IsCompleted ? _fatal.Task.Result : null;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await RunAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        var k = kafkaOptions.Value;
        var set = await targets.StartAsync(stoppingToken);
        await kafka.WaitForBrokersAsync(retries, stoppingToken);
        watcher.Failed += Fail;
        watcher.Begin();
        var book = new PartitionBook(metrics);
        var work = Channel.CreateUnbounded<Work>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var producer = kafka.CreateProducer(e => Fail(new KafkaException(e)));
        using var consumer = kafka.CreateConsumer(
            (_, partitions) =>
            {
                book.Assigned(partitions);
                LogAssigned(logger, string.Join(", ", partitions.Select(p => p.Partition.Value)));
            },
            (_, partitions) =>
            {
                book.Revoke(partitions.Select(p => p.TopicPartition), TimeSpan.FromSeconds(o.DrainSeconds));
                LogRevoked(logger, string.Join(", ", partitions.Select(p => p.Partition.Value)));
            },
            (_, partitions) =>
            {
                book.Lost(partitions.Select(p => p.TopicPartition));
                LogLost(logger, string.Join(", ", partitions.Select(p => p.Partition.Value)));
            },
            e => Fail(new KafkaException(e)));
        consumer.Subscribe(k.Topic);
        LogStarted(logger, k.Topic, k.GroupId, set.Space, set.Describe());

        var publisher = new ResultPublisher(producer, k, retries, logger);
        var writer = new BatchWriter(work.Reader, consumer, targets, pipeline, store, publisher, book, retries, o, metrics, logger);
        var loop = new ConsumeLoop(consumer, work.Writer, processor.ProcessAsync, book, o, metrics, logger);

        using var stopProcessing = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        using var stopConsuming = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var writing = Task.Run(() => writer.RunAsync(stopProcessing.Token), CancellationToken.None);
        var consuming = Task.Factory.StartNew(() => loop.Run(stopProcessing.Token, stopConsuming.Token), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var drained = true;
        try
        {
            var first = await Task.WhenAny(consuming, writing, _fatal.Task);
            if (first == writing && writing.Exception is { } failed) Fail(failed.GetBaseException());
            if (_fatal.Task.IsCompleted)
            {
                // Nothing consumed from now on will be finished: stop at once, leave the group promptly.
                book.WriterStopped = true;
                await stopProcessing.CancelAsync();
            }
            await stopConsuming.CancelAsync();
            await consuming;
        }
        finally
        {
            // Graceful stop: no new messages; finish what is in flight, store its offsets, then leave the group.
            work.Writer.TryComplete();
            if (!_fatal.Task.IsCompleted)
            {
                drained = await Task.WhenAny(writing, Task.Delay(TimeSpan.FromSeconds(o.DrainSeconds), CancellationToken.None)) == writing;
                if (!drained) await stopProcessing.CancelAsync();
            }
            try
            {
                await writing;
            }
            catch (Exception e) when (e is OperationCanceledException || _fatal.Task.IsCompleted)
            {
            }
            catch (Exception e)
            {
                Fail(e);
            }
            book.WriterStopped = true;
            consumer.Close();
            producer.Flush(TimeSpan.FromSeconds(10));
            LogStopped(logger, drained && !_fatal.Task.IsCompleted);
        }
    }

    // A fatal failure (the active version cannot be loaded, a fatal Kafka error, a failure the
    // writer cannot sort) stops the process: a member that consumes and never commits helps nobody.
    private void Fail(Exception e)
    {
        if (!_fatal.TrySetResult(e)) return;
        LogFatal(logger, StopReason.Of(e));
        lifetime.StopApplication();
    }

    [LoggerMessage(EventId = 5600, Level = LogLevel.Information, Message = "Consuming {Topic} as group {Group} into space {Space}: {Targets}")]
    private static partial void LogStarted(ILogger logger, string topic, string group, string space, string targets);

    [LoggerMessage(EventId = 5601, Level = LogLevel.Critical, Message = "The worker stops: {Reason}")]
    private static partial void LogFatal(ILogger logger, string reason);

    [LoggerMessage(EventId = 5602, Level = LogLevel.Information, Message = "Stopped (in-flight work finished: {Drained})")]
    private static partial void LogStopped(ILogger logger, bool drained);

    [LoggerMessage(EventId = 5603, Level = LogLevel.Information, Message = "Partitions assigned: {Partitions}")]
    private static partial void LogAssigned(ILogger logger, string partitions);

    [LoggerMessage(EventId = 5604, Level = LogLevel.Information, Message = "Partitions revoked: {Partitions}")]
    private static partial void LogRevoked(ILogger logger, string partitions);

    [LoggerMessage(EventId = 5605, Level = LogLevel.Warning, Message = "Partitions lost: {Partitions}")]
    private static partial void LogLost(ILogger logger, string partitions);
}
