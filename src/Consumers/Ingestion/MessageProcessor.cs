using System.Text;
using Confluent.Kafka;
using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Pipeline;
using FreeBind.Consumers.Pipeline.Content;
using FreeBind.Consumers.Resilience;
using FreeBind.Consumers.Spaces;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// The Kafka side of one message: its bytes → a <see cref="MediaEvent"/> (the contract) → the item
/// pipeline for an upsert → an outcome. Never throws for a message: whatever its
/// bytes, the outcome is a write, a delete or a dead letter with a class.
/// </summary>
public sealed class MessageProcessor(ItemPipeline pipeline, WriteTargets targets, IOptions<ContentOptions> content)
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);
    private readonly EventLimits _limits = content.Value.Limits;

    internal async Task<Outcome> ProcessAsync(ConsumeResult<byte[]?, byte[]?> message, CancellationToken cancellationToken)
    {
        MediaEvent evt;
        try
        {
            evt = MediaEventParser.Parse(message.Message.Value ?? [], Key(message.Message.Key), _limits);
        }
        catch (RejectedException e)
        {
            return new Outcome.Rejected(message, e.ErrorClass, e.Message, 1);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Parsing is a pure function of the bytes: trying again would fail the same way.
            return new Outcome.Rejected(message, ErrorClasses.Internal, Failures.Describe(e), 1);
        }
        if (evt.Type == MediaEventType.Deleted) return new Outcome.Deleted(message, evt);
        return await pipeline.ProcessAsync(ItemRequest.From(evt), targets.Current, cancellationToken) switch
        {
            ItemResult.Embedded embedded => new Outcome.Upserted(message, evt, embedded),
            ItemResult.Rejected r => new Outcome.Rejected(message, r.ErrorClass, r.Reason, r.Attempts),
            var other => throw new InvalidOperationException($"unexpected item result {other.GetType().Name}"),
        };
    }

    // A key that is not UTF-8 cannot equal an id: it is compared as the replacement text and refused as a mismatch.
    private static string? Key(byte[]? key)
    {
        if (key is null) return null;
        try
        {
            return StrictUtf8.GetString(key);
        }
        catch (DecoderFallbackException)
        {
            return System.Text.Encoding.UTF8.GetString(key) + " (not valid UTF-8)";
        }
    }
}
