using Confluent.Kafka;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Cache;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging;

namespace FreeBind.Consumers.Ingestion;

/// <summary>What one message turned into; written (or dead-lettered) by the <see cref="IngestionWorker"/>.</summary>
public abstract record Outcome(ConsumeResult<string?, byte[]> Message)
{
    public sealed record Upserted(ConsumeResult<string?, byte[]> Message, MediaEvent Event, EmbeddedItem Item, bool CacheHit) : Outcome(Message);
    public sealed record Deleted(ConsumeResult<string?, byte[]> Message, MediaEvent Event) : Outcome(Message);
    public sealed record Poisoned(ConsumeResult<string?, byte[]> Message, string ErrorClass, string Reason, int Attempts) : Outcome(Message);
}

/// <summary>The space the worker embeds into: its definition (encoders, bonds) and its stored version.</summary>
public sealed record ActiveSpace(SpaceDefinition Definition, SpaceVersion Version);

/// <summary>
/// One message → one outcome: parse, fetch, dedupe by content digest in the cache, else
/// preprocess → experts → bonds, then tags. Bad input becomes a <see cref="Outcome.Poisoned"/>
/// with a reason; infrastructure failures (Postgres for label embeddings) are retried here.
/// </summary>
public sealed partial class ItemProcessor(
    IngestionOptions options, ContentResolver resolver, Embedder embedder, EmbeddingCache cache, Tagger tagger, ILogger<ItemProcessor> logger)
{
    private const int FetchAttempts = 4;

    public async Task<Outcome> ProcessAsync(ActiveSpace space, ConsumeResult<string?, byte[]> message, CancellationToken cancellationToken)
    {
        var attempts = 0;
        while (true)
        {
            attempts++;
            try
            {
                return await ProcessOnceAsync(space, message, cancellationToken);
            }
            catch (PoisonException e)
            {
                return new Outcome.Poisoned(message, e.ErrorClass, e.Message, attempts);
            }
            catch (MediaException e)
            {
                return new Outcome.Poisoned(message, "decode." + KebabCase(e.Kind.ToString()), e.Message, attempts);
            }
            catch (ModelOutputException e)
            {
                return new Outcome.Poisoned(message, PoisonException.ModelOutput, e.Message, attempts);
            }
            catch (Exception e) when (e is TimeoutException or HttpRequestException && !cancellationToken.IsCancellationRequested)
            {
                // A remote source may come back; after a few tries the message is dead-lettered, not lost.
                if (attempts >= FetchAttempts) return new Outcome.Poisoned(message, PoisonException.FetchFailed, e.Message, attempts);
                await Task.Delay(TimeSpan.FromMilliseconds(250 << attempts), cancellationToken);
            }
            catch (Exception e) when (Transient.IsInfrastructure(e) && !cancellationToken.IsCancellationRequested)
            {
                LogRetry(logger, message.TopicPartitionOffset.ToString(), attempts, e.Message);
                await Task.Delay(Transient.Backoff(attempts), cancellationToken);
            }
        }
    }

    private async Task<Outcome> ProcessOnceAsync(ActiveSpace space, ConsumeResult<string?, byte[]> message, CancellationToken cancellationToken)
    {
        var evt = MediaEvent.Parse(message.Message.Value ?? [], message.Message.Key, options);
        if (evt.Type == MediaEventType.Deleted) return new Outcome.Deleted(message, evt);
        var definition = space.Definition;
        if (!definition.Plans.ContainsKey(evt.Modality))
            throw new PoisonException(PoisonException.UnknownModality, $"space '{definition.Name}' does not serve {evt.Modality.ToName()}");

        var bytes = await resolver.ResolveAsync(evt.Source!, cancellationToken);
        var sha = MediaEvent.Sha256Hex(bytes);
        if (evt.Sha256 is { } declared && declared != sha)
            throw new PoisonException(PoisonException.DigestMismatch, $"content sha256 is {sha}, the event declares {declared}");

        var key = CacheKey.For(space.Version, evt.Modality.ToName(), sha);
        var vector = await cache.TryGetAsync(key, definition.Dimension);
        var atoms = new List<Atom>();
        var hit = vector is not null;
        if (vector is null)
        {
            var embedding = await embedder.EmbedAsync(definition, ToInput(evt, bytes), cancellationToken);
            vector = embedding.Vector;
            foreach (var (expert, atom) in embedding.Atoms)
                atoms.Add(new Atom(expert, definition.ModelDigest(expert, evt.Modality), atom));
            await cache.SetAsync(key, vector);
        }
        var tags = await tagger.TagAsync(definition, space.Version, evt.Tenant, evt.Modality, vector, cancellationToken);
        var source = evt.Source switch
        {
            MediaSource.Link link => link.Uri.ToString(),
            MediaSource.Inline => "inline",
            _ => "text",
        };
        var item = new EmbeddedItem(new MediaItem(evt.Id, evt.Tenant, evt.Modality.ToName(), source, sha, evt.MetadataJson), vector, atoms, tags);
        return new Outcome.Upserted(message, evt, item, hit);
    }

    private static MediaInput ToInput(MediaEvent evt, byte[] bytes)
    {
        if (evt.Modality != Modality.Text) return new MediaInput(evt.Modality, bytes, FileName: evt.Source is MediaSource.Link l ? l.Uri.AbsolutePath : null);
        try
        {
            return MediaInput.FromText(new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes));
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw new PoisonException(PoisonException.SchemaViolation, "text content is not valid UTF-8");
        }
    }

    private static string KebabCase(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) && i > 0 ? "-" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    [LoggerMessage(Level = LogLevel.Warning, Message = "Retrying {Message} (attempt {Attempt}): {Reason}")]
    private static partial void LogRetry(ILogger logger, string message, int attempt, string reason);
}

/// <summary>Which failures are the infrastructure's (retry until it returns), not the message's.</summary>
internal static class Transient
{
    public static bool IsInfrastructure(Exception e) => e switch
    {
        Npgsql.NpgsqlException => true,
        System.Net.Sockets.SocketException => true,
        IOException { InnerException: System.Net.Sockets.SocketException } => true,
        TimeoutException => true,
        _ => e.InnerException is not null && IsInfrastructure(e.InnerException),
    };

    public static TimeSpan Backoff(int attempt) => TimeSpan.FromMilliseconds(Math.Min(5000, 100 * (1 << Math.Min(attempt, 6))));
}
