using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using FreeBind.Consumers.Ingestion;
using FreeBind.Persistence;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Tags;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Pgvector;

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
        command.SetAction((result, ct) => FreeBindCli.Guard(async () =>
        {
            var folder = result.GetValue(media)!.FullName;
            var settings = new Dictionary<string, string?>
            {
                ["Kafka:Embedded"] = "true",
                ["Kafka:GroupId"] = "freebind-demo-" + Guid.NewGuid().ToString("N")[..6],
                ["Kafka:AllowedFileRoots:0"] = folder,
                ["Kafka:SessionTimeoutMs"] = "6000",
                ["Kafka:TagTopK"] = "3",
                ["Kafka:TagThreshold"] = "-1",
            };
            if (result.GetValue(FreeBindCli.Space) is { } space) settings["Kafka:Space"] = space;
            if (result.GetValue(FreeBindCli.Models) is { } models) settings["Spaces:ModelRoot"] = Path.GetFullPath(models);
            using var host = CliHost.Build(builder =>
            {
                builder.Configuration.AddInMemoryCollection(settings);
                builder.AddPersistence();
                builder.AddIngestion();
            });
            await host.StartAsync(ct);
            var options = host.Services.GetRequiredService<IngestionOptions>();
            var active = await host.Services.GetRequiredService<SpaceBootstrap>().GetAsync(ct);
            await host.Services.GetRequiredService<TagVocabularyStore>().UpsertAsync("demo", "demo-labels", Labels, ct);

            var events = new List<(string Id, object Event)>();
            foreach (var name in new[] { "BBQ", "toilet", "train" })
            {
                events.Add(($"{name}.jpeg", new { id = $"{name}.jpeg", tenant = "demo", type = "upserted", modality = "image", uri = new Uri(Path.Combine(folder, name + ".jpeg")).AbsoluteUri }));
                events.Add(($"{name}.wav", new { id = $"{name}.wav", tenant = "demo", type = "upserted", modality = "audio", uri = new Uri(Path.Combine(folder, name + ".wav")).AbsoluteUri }));
            }
            foreach (var caption in new[] { "an audio of barbeque", "an audio of toilet", "an audio of train" })
                events.Add((caption, new { id = caption, tenant = "demo", type = "upserted", modality = "text", text = caption }));
            using (var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = host.Services.GetRequiredService<KafkaConnection>().BootstrapServers }).Build())
                foreach (var (id, evt) in events)
                    await producer.ProduceAsync(options.Topic, new Message<string, string> { Key = id, Value = JsonSerializer.Serialize(evt) }, ct);
            Console.WriteLine($"Streamed {events.Count} events to the embedded Kafka topic {options.Topic}; space {active.Definition.Name} {active.Definition.ShortVersion}");

            var worker = host.Services.GetRequiredService<IngestionWorker>();
            var deadline = DateTime.UtcNow.AddMinutes(3);
            while (worker.Completed < events.Count && DateTime.UtcNow < deadline) await Task.Delay(200, ct);
            if (worker.Completed < events.Count) throw new TimeoutException($"the worker finished {worker.Completed} of {events.Count} events in 3 minutes");

            var dataSource = host.Services.GetRequiredService<NpgsqlDataSource>();
            var store = host.Services.GetRequiredService<EmbeddingStore>();
            var inv = CultureInfo.InvariantCulture;
            foreach (var (id, _) in events)
            {
                var vector = await store.GetEmbeddingAsync(active.Version, id, ct) ?? throw new InvalidOperationException($"{id} was not stored");
                var tags = new List<string>();
                await using (var cmd = dataSource.CreateCommand("SELECT label, score FROM media_tags WHERE media_id = $1 AND space_version_id = $2 ORDER BY score DESC"))
                {
                    cmd.Parameters.Add(new() { Value = id });
                    cmd.Parameters.Add(new() { Value = active.Version.Id });
                    await using var reader = await cmd.ExecuteReaderAsync(ct);
                    while (await reader.ReadAsync(ct)) tags.Add($"{reader.GetString(0)} {reader.GetFloat(1).ToString("0.000", inv)}");
                }
                var neighbours = new List<string>();
                await using (var cmd = dataSource.CreateCommand("SELECT media_id, similarity FROM freebind_search($1, $2, 4, 'demo') WHERE media_id <> $3"))
                {
                    cmd.Parameters.Add(new() { Value = active.Definition.Name });
                    cmd.Parameters.Add(new() { Value = new Vector(vector) });
                    cmd.Parameters.Add(new() { Value = id });
                    await using var reader = await cmd.ExecuteReaderAsync(ct);
                    while (await reader.ReadAsync(ct)) neighbours.Add($"{reader.GetString(0)} {reader.GetDouble(1).ToString("0.000", inv)}");
                }
                Console.WriteLine($"{id,-22} tags: {string.Join(", ", tags)}");
                Console.WriteLine($"{"",-22} nearest: {string.Join(", ", neighbours)}");
            }
            await host.StopAsync(ct);
            return 0;
        }));
        return command;
    }
}
