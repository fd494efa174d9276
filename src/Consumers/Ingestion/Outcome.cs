using Confluent.Kafka;
using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Pipeline;

namespace FreeBind.Consumers.Ingestion;

/// <summary>What one consumed message turned into; made durable by the <see cref="BatchWriter"/>.</summary>
/// <param name="Message">The message as consumed (raw key and value bytes).</param>
internal abstract record Outcome(ConsumeResult<byte[]?, byte[]?> Message)
{
    /// <summary>An upsert, embedded and ready to write.</summary>
    public sealed record Upserted(ConsumeResult<byte[]?, byte[]?> Message, MediaEvent Event, ItemResult.Embedded Result) : Outcome(Message);

    /// <summary>A delete.</summary>
    public sealed record Deleted(ConsumeResult<byte[]?, byte[]?> Message, MediaEvent Event) : Outcome(Message);

    /// <summary>A message that is dead-lettered with this class and reason.</summary>
    public sealed record Rejected(ConsumeResult<byte[]?, byte[]?> Message, string ErrorClass, string Reason, int Attempts) : Outcome(Message);

    /// <summary>The media id of an upsert or delete; null for a rejected message.</summary>
    public string? Key => this switch
    {
        Upserted u => u.Event.Id,
        Deleted d => d.Event.Id,
        _ => null,
    };
}

/// <summary>A consumed message and the task that turns it into an <see cref="Outcome"/>.</summary>
internal sealed record Work(ConsumeResult<byte[]?, byte[]?> Message, Task<Outcome> Outcome);
