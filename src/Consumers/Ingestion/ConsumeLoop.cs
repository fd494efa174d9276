using System.Threading.Channels;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// The blocking consume loop, on its own thread: each message's processing starts at once (they
/// meet in the encoders' micro-batchers) and its work goes to the writer in consume order. When
/// too many messages are in flight the assigned partitions are paused (bounded memory) and
/// resumed once the writer catches up.
/// </summary>
internal sealed partial class ConsumeLoop(
    IConsumer<byte[]?, byte[]?> consumer, ChannelWriter<Work> work, Func<ConsumeResult<byte[]?, byte[]?>, CancellationToken, Task<Outcome>> process,
    PartitionBook book, IngestionOptions options, IngestionMetrics metrics, ILogger logger)
{
    /// <param name="processing">Cancels the processing of consumed messages (a hard stop).</param>
    /// <param name="stopping">Ends the loop (no new messages).</param>
    public void Run(CancellationToken processing, CancellationToken stopping)
    {
        var paused = false;
        while (!stopping.IsCancellationRequested)
        {
            ConsumeResult<byte[]?, byte[]?>? result;
            try
            {
                // While paused nothing arrives; poll briefly so the partitions resume as soon as the writer catches up.
                result = consumer.Consume(TimeSpan.FromMilliseconds(paused ? 5 : 100));
            }
            catch (ConsumeException e) when (!e.Error.IsFatal)
            {
                LogConsumeError(logger, e.Error.Reason);
                continue;
            }
            if (result is { IsPartitionEOF: false, Message: not null })
            {
                book.Consumed(result.TopicPartition);
                var message = result;
                work.TryWrite(new Work(message, Task.Run(() => process(message, processing), processing)));
            }
            var inFlight = book.InFlight;
            if (!paused && inFlight >= options.MaxInFlight)
            {
                consumer.Pause(consumer.Assignment);
                paused = true;
                metrics.Paused();
                LogPaused(logger, inFlight);
            }
            else if (paused && inFlight <= options.ResumeInFlight)
            {
                consumer.Resume(consumer.Assignment);
                paused = false;
                LogResumed(logger, inFlight);
            }
        }
    }

    [LoggerMessage(EventId = 5300, Level = LogLevel.Warning, Message = "Consume error: {Reason}")]
    private static partial void LogConsumeError(ILogger logger, string reason);

    [LoggerMessage(EventId = 5301, Level = LogLevel.Information, Message = "Paused partitions: {InFlight} messages in flight")]
    private static partial void LogPaused(ILogger logger, int inFlight);

    [LoggerMessage(EventId = 5302, Level = LogLevel.Information, Message = "Resumed partitions: {InFlight} messages in flight")]
    private static partial void LogResumed(ILogger logger, int inFlight);
}
