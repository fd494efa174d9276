using System.CommandLine;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Ingestion;
using FreeBind.Consumers.Kafka;
using FreeBind.Consumers.Spaces;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Search;
using FreeBind.Persistence.Tags;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind demo</c>: the whole main job on embedded defaults. An in-process Kafka (librdkafka's
/// mock cluster), the sample media and captions streamed as events, the worker embedding them into
/// Postgres/pgvector with tags, then each item's tags and nearest neighbours. Needs Postgres and
/// Redis (scripts/demo.sh starts them).
/// </summary>
internal static class DemoCommand
{
    private static readonly string[] Labels = ["barbeque", "toilet", "train", "dog", "car", "music", "rain", "kitchen", "bird", "street"];

    public static Command Build()
    {
        var media = new Option<DirectoryInfo>("--media") { Description = "Folder with the sample media (BBQ/toilet/train .jpeg and .wav)", Required = true };
        var command = new Command("demo", "Stream the sample media through an embedded Kafka into the worker and print tags and neighbours")
        {
            FreeBindCli.Space, FreeBindCli.Models, media,
        };
        command.SetAction((result, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            var folder = result.GetValue(media)!.FullName;
            using var host = CliHost.Build(builder =>
            {
                builder.Configuration.AddInMemoryCollection(RunCommand.Overrides(result));
                builder.AddDemo(folder);
            });
            using var progress = new IngestionMetricsListener(host.Services.GetRequiredService<IMeterFactory>());
            await host.StartAsync(ct);
            var kafka = host.Services.GetRequiredService<IOptions<KafkaOptions>>().Value;
            var targets = await host.Services.GetRequiredService<WriteTargets>().StartAsync(ct);
            var active = targets.Active ?? throw new InvalidOperationException("the demo space has no active version");
            await host.Services.GetRequiredService<TagVocabularyStore>().UpsertAsync("demo", "demo-labels", Labels, ct);

            var events = new List<(string Id, object Event)>();
            foreach (var name in new[] { "BBQ", "toilet", "train" })
            {
                events.Add(($"{name}.jpeg", new { id = $"{name}.jpeg", tenant = "demo", type = "upserted", modality = "image", uri = new Uri(Path.Combine(folder, name + ".jpeg")).AbsoluteUri }));
                events.Add(($"{name}.wav", new { id = $"{name}.wav", tenant = "demo", type = "upserted", modality = "audio", uri = new Uri(Path.Combine(folder, name + ".wav")).AbsoluteUri }));
            }
            foreach (var caption in new[] { "an audio of barbeque", "an audio of toilet", "an audio of train" })
                events.Add((caption, new { id = caption, tenant = "demo", type = "upserted", modality = "text", text = caption }));
            using (var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = host.Services.GetRequiredService<KafkaClients>().BootstrapServers }).Build())
                foreach (var (id, evt) in events)
                    await producer.ProduceAsync(kafka.Topic, new Message<string, string> { Key = id, Value = JsonSerializer.Serialize(evt) }, ct);
            Console.WriteLine($"Streamed {events.Count} events to the embedded Kafka topic {kafka.Topic}; space {active.Definition.Name} {active.Definition.ShortVersion}");

            await progress.WaitForCompletedAsync(events.Count, TimeSpan.FromMinutes(3), ct);
            if (progress.DeadLettered > 0)
                throw new InvalidOperationException($"{progress.DeadLettered} of the demo's events were dead-lettered (see the log above)");

            var store = host.Services.GetRequiredService<EmbeddingStore>();
            var tags = host.Services.GetRequiredService<TagVocabularyStore>();
            var search = host.Services.GetRequiredService<VectorSearch>();
            var inv = CultureInfo.InvariantCulture;
            foreach (var (id, _) in events)
            {
                var vector = await store.GetEmbeddingAsync(active.Version, id, ct) ?? throw new InvalidOperationException($"{id} was not stored");
                var itemTags = await tags.GetItemTagsAsync(active.Version, id, ct);
                var neighbours = (await search.SearchAsync(active.Definition.Name, vector, 4, "demo", ct)).Hits.Where(h => h.MediaId != id);
                Console.WriteLine($"{id,-22} tags: {string.Join(", ", itemTags.Select(t => $"{t.Label} {t.Score.ToString("0.000", inv)}"))}");
                Console.WriteLine($"{"",-22} nearest: {string.Join(", ", neighbours.Select(n => $"{n.MediaId} {n.Similarity.ToString("0.000", inv)}"))}");
            }
            await host.StopAsync(ct);
            return 0;
        })));
        return command;
    }
}
