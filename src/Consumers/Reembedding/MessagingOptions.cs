using System.ComponentModel.DataAnnotations;

namespace FreeBind.Consumers.Reembedding;

/// <summary>Which MassTransit transport carries the re-embedding messages.</summary>
public enum MessagingTransport
{
    /// <summary>RabbitMQ: production and the tests (messages survive a process crash).</summary>
    RabbitMq,

    /// <summary>In-process only: the embedded demo, where one process plays every role.</summary>
    InMemory,
}

/// <summary>Transport settings (section <c>Messaging</c>).</summary>
public sealed class MessagingOptions : IValidatableObject
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Messaging";

    /// <summary>RabbitMq (default) or InMemory.</summary>
    public MessagingTransport Transport { get; set; } = MessagingTransport.RabbitMq;

    /// <summary>AMQP URI, e.g. <c>amqp://user:password@rabbit:5672/vhost</c>; when empty, <c>$FREEBIND_RABBITMQ</c> (scripts/services.sh env).</summary>
    public string RabbitMq { get; set; } = "";

    /// <inheritdoc />
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Transport != MessagingTransport.RabbitMq) yield break;
        if (string.IsNullOrWhiteSpace(RabbitMq))
            yield return new ValidationResult("Messaging:RabbitMq is required with the RabbitMq transport (or set FREEBIND_RABBITMQ, or Messaging:Transport=InMemory for a single process)");
        else if (!Uri.TryCreate(RabbitMq, UriKind.Absolute, out var uri) || uri.Scheme is not ("amqp" or "amqps"))
            yield return new ValidationResult($"Messaging:RabbitMq must be an amqp:// or amqps:// URI");
    }
}
