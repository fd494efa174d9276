using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using FreeBind.Consumers.Ingestion;
using FreeBind.Consumers.Kafka;
using FreeBind.Consumers.Spaces;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Search;
using FreeBind.Persistence.Tags;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Demo;

/// <summary>
/// The demo's first half, the main job: the sample media and captions streamed as events through the
/// embedded Kafka into the worker (→ pgvector, Redis, tags), then each item's tags and nearest neighbours.
/// </summary>
internal sealed class DemoStream(IHost host, IngestionMetricsListener progress)
{
    private static readonly string[] Labels = ["barbeque", "toilet", "train", "dog", "car", "music", "rain", "kitchen", "bird", "street"];

    /// <summary>Streams the samples of <paramref name="folder"/> into the active version and prints what the worker made of them.</summary>
    /// <param name="folder">The sample media folder.</param>
    /// <param name="database">The demo database's name (printed).</param>
    /// <param name="ct">Cancels the demo.</param>
    /// <returns>The active version the items went into.</returns>
    public async Task<SpaceTarget> RunAsync(string folder, string database, CancellationToken ct)
    {
        var services = host.Services;
        var kafka = services.GetRequiredService<IOptions<KafkaOptions>>().Value;
        var targets = await services.GetRequiredService<WriteTargets>().StartAsync(ct);
        var active = targets.Active ?? throw new DemoException("the demo space has no active version");
        await services.GetRequiredService<TagVocabularyStore>().UpsertAsync("demo", "demo-labels", Labels, ct);

        var events = new List<(string Id, object Event)>();
        foreach (var name in new[] { "BBQ", "toilet", "train" })
        {
            events.Add(($"{name}.jpeg", new { id = $"{name}.jpeg", tenant = "demo", type = "upserted", modality = "image", uri = new Uri(Path.Combine(folder, name + ".jpeg")).AbsoluteUri }));
            events.Add(($"{name}.wav", new { id = $"{name}.wav", tenant = "demo", type = "upserted", modality = "audio", uri = new Uri(Path.Combine(folder, name + ".wav")).AbsoluteUri }));
        }
        foreach (var caption in new[] { "an audio of barbeque", "an audio of toilet", "an audio of train" })
            events.Add((caption, new { id = caption, tenant = "demo", type = "upserted", modality = "text", text = caption }));
        using (var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = services.GetRequiredService<KafkaClients>().BootstrapServers }).Build())
            foreach (var (id, evt) in events)
                await producer.ProduceAsync(kafka.Topic, new Message<string, string> { Key = id, Value = JsonSerializer.Serialize(evt) }, ct);
        Console.WriteLine($"Streamed {events.Count} events to the embedded Kafka topic {kafka.Topic}; space {active.Definition.Name} v{active.Version.Id} {active.Definition.ShortVersion}, " +
                          $"in the demo's database {database} (recreated at every run)");

        await progress.WaitForCompletedAsync(events.Count, TimeSpan.FromMinutes(3), ct);
        if (progress.DeadLettered > 0)
            throw new DemoException($"{progress.DeadLettered} of the demo's events were dead-lettered (see the log above)");

        var store = services.GetRequiredService<EmbeddingStore>();
        var tags = services.GetRequiredService<TagVocabularyStore>();
        var search = services.GetRequiredService<VectorSearch>();
        var inv = CultureInfo.InvariantCulture;
        foreach (var (id, _) in events)
        {
            var vector = await store.GetEmbeddingAsync(active.Version, id, ct) ?? throw new DemoException($"{id} was not stored");
            var itemTags = await tags.GetItemTagsAsync(active.Version, id, ct);
            var neighbours = (await search.SearchAsync(active.Definition.Name, vector, 4, "demo", ct)).Hits.Where(h => h.MediaId != id);
            Console.WriteLine($"{id,-22} tags: {string.Join(", ", itemTags.Select(t => $"{t.Label} {t.Score.ToString("0.000", inv)}"))}");
            Console.WriteLine($"{"",-22} nearest: {Hits(neighbours)}");
        }
        return active;
    }

    /// <summary>Neighbours as <c>id similarity, …</c>.</summary>
    /// <param name="hits">The hits to print.</param>
    public static string Hits(IEnumerable<SearchHit> hits) =>
        string.Join(", ", hits.Select(n => $"{n.MediaId} {n.Similarity.ToString("0.000", CultureInfo.InvariantCulture)}"));
}
