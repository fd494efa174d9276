using Confluent.Kafka;
using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Kafka;
using FreeBind.Consumers.Pipeline;
using FreeBind.Consumers.Resilience;
using FreeBind.Consumers.Spaces;
using FreeBind.Encoding;
using Microsoft.Extensions.Logging;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// Publishes what the writer made durable: one output event per stored item on
/// <see cref="KafkaOptions.OutputTopic"/>, and a copy of every refused message on
/// <see cref="KafkaOptions.DeadLetterTopic"/> with the dead-letter headers. Produce errors that are
/// not fatal are retried until they pass; a copy too large for the dead-letter topic goes without
/// its value, so no message can block its partition.
/// </summary>
internal sealed partial class ResultPublisher(IProducer<byte[]?, byte[]?> producer, KafkaOptions options, Retries retries, ILogger logger)
{
    /// <summary>The output event of a stored item, for the set's primary (active) version when it serves the item.</summary>
    public Task PublishAsync(TargetSet targets, ItemResult.Embedded item, CancellationToken cancellationToken)
    {
        var embedding = item.Embeddings.FirstOrDefault(e => e.Target.Version.Id == targets.Primary?.Version.Id) ?? item.Embeddings[0];
        var r = item.Request;
        var value = new MediaEmbedded(r.Id, r.Tenant, r.Modality.ToName(), embedding.Target.Version.Space, embedding.Target.Version.Digest, item.Sha256,
            item.CacheHit, [.. embedding.Tags.Select(t => new EmbeddedTag(t.Label, t.Score, t.VocabularyId))]);
        var message = new Message<byte[]?, byte[]?>
        {
            Key = System.Text.Encoding.UTF8.GetBytes(r.Id),
            Value = value.ToUtf8Json(),
            Headers = new Headers { { MediaEmbedded.SchemaHeader, System.Text.Encoding.UTF8.GetBytes(MediaEmbedded.SchemaHeaderValue) } },
        };
        return ProduceAsync(options.OutputTopic, message, cancellationToken);
    }

    /// <summary>Copies a refused message to the dead-letter topic: original key, value and headers, plus the dead-letter headers.</summary>
    public async Task DeadLetterAsync(ConsumeResult<byte[]?, byte[]?> source, string errorClass, string reason, int attempts, CancellationToken cancellationToken)
    {
        LogDeadLetter(logger, source.TopicPartitionOffset.ToString(), errorClass, reason);
        var letter = new DeadLetter(errorClass, reason, source.Topic, source.Partition.Value, source.Offset.Value, attempts,
            DateTimeOffset.UtcNow);
        try
        {
            await ProduceAsync(options.DeadLetterTopic, Copy(source, letter, withValue: true), cancellationToken);
        }
        catch (ProduceException<byte[]?, byte[]?> e) when (e.Error.Code == ErrorCode.MsgSizeTooLarge)
        {
            // Too large for the dead-letter topic (or this producer's message.max.bytes): the copy goes
            // without its value, and the headers say what it was.
            var value = source.Message.Value ?? [];
            LogValueDropped(logger, source.TopicPartitionOffset.ToString(), value.Length);
            await ProduceAsync(options.DeadLetterTopic, Copy(source, letter with
            {
                ValueDropped = true,
                ValueBytes = value.Length,
                ValueSha256 = MediaEventParser.Sha256Hex(value),
            }, withValue: false), cancellationToken);
        }
    }

    private static Message<byte[]?, byte[]?> Copy(ConsumeResult<byte[]?, byte[]?> source, DeadLetter letter, bool withValue)
    {
        var headers = new Headers();
        if (source.Message.Headers is { } original)
            foreach (var h in original) headers.Add(h.Key, h.GetValueBytes());
        foreach (var (name, value) in DeadLetterHeaders.ToHeaders(letter)) headers.Add(name, value);
        return new Message<byte[]?, byte[]?> { Key = source.Message.Key, Value = withValue ? source.Message.Value : null, Headers = headers };
    }

    private Task ProduceAsync(string topic, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken) =>
        retries.Produce.ExecuteAsync(async token => await producer.ProduceAsync(topic, message, token), cancellationToken).AsTask();

    [LoggerMessage(EventId = 5400, Level = LogLevel.Warning, Message = "Dead-lettering {Message}: {ErrorClass}: {Reason}")]
    private static partial void LogDeadLetter(ILogger logger, string message, string errorClass, string reason);

    [LoggerMessage(EventId = 5401, Level = LogLevel.Warning, Message = "Dead letter of {Message} sent without its {Bytes}-byte value: too large for the dead-letter topic")]
    private static partial void LogValueDropped(ILogger logger, string message, int bytes);
}
