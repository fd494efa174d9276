using System.Text.Json.Nodes;
using FreeBind.Consumers.Cli;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Reembedding;
using FreeBind.Encoding;
using FreeBind.Encoding.Experts;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Sagas;
using FreeBind.Persistence.Spaces;
using FreeBind.Tests.Fusion;
using FreeBind.Tests.Ingestion;
using FreeBind.Tests.Persistence;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FreeBind.Tests.Reembedding;

/// <summary>
/// What the re-embedding run tests share: the archive's items as the test knows them (their content,
/// to compute every vector from scratch), space variants (a changed expert, other factors), the
/// saga host and workers in this process or as `freebind reembed host` processes, and exact checks.
/// </summary>
internal static class ReembeddingScenario
{
    /// <summary>An item of the archive and the content it was ingested from (null: the test cannot know it).</summary>
    public sealed record Item(string Id, object Event, MediaInput Content);

    public static Item Text(string id, string text) => new(id, IngestionHarness.TextEvent(id, text), MediaInput.FromText(text));

    public static Item File(string id, Modality modality, string file) =>
        new(id, IngestionHarness.FileEvent(id, modality.ToName(), file),
            new MediaInput(modality, System.IO.File.ReadAllBytes(TestPaths.Sample(file)), FileName: TestPaths.Sample(file)));

    public static Item Inline(string id, Modality modality, byte[] bytes) =>
        new(id, new { id, tenant = "acme", type = "upserted", modality = modality.ToName(), data = Convert.ToBase64String(bytes) },
            new MediaInput(modality, bytes));

    /// <summary>A 16-bit mono WAV of a tone: small enough to send inline.</summary>
    public static byte[] ToneWav(double seconds, double hertz, int rate = 16_000)
    {
        var samples = (int)(seconds * rate);
        using var stream = new MemoryStream();
        using var w = new BinaryWriter(stream);
        w.Write("RIFF"u8);
        w.Write(36 + samples * 2);
        w.Write("WAVEfmt "u8);
        w.Write(16);
        w.Write((short)1);
        w.Write((short)1);
        w.Write(rate);
        w.Write(rate * 2);
        w.Write((short)2);
        w.Write((short)16);
        w.Write("data"u8);
        w.Write(samples * 2);
        for (var i = 0; i < samples; i++)
            w.Write((short)(8000 * Math.Sin(2 * Math.PI * hertz * i / rate)));
        w.Flush();
        return stream.ToArray();
    }

    /// <summary>
    /// A variant of a space's manifest (same name, so a new version of the same space), written to a
    /// folder of the test run and loaded against the stand-in models.
    /// </summary>
    public static SpaceDefinition Variant(string space, Action<JsonObject> edit, FactorSelection? factors = null)
    {
        var manifest = JsonNode.Parse(System.IO.File.ReadAllText(EngineFixture.Manifest(space)))!.AsObject();
        edit(manifest);
        var folder = Directory.CreateTempSubdirectory("freebind-variant-").FullName;
        var path = Path.Combine(folder, space + ".json");
        System.IO.File.WriteAllText(path, manifest.ToJsonString());
        return SpaceLoader.Load(path, EngineFixture.Models, factors);
    }

    /// <summary>Registers the version as <c>spaces publish</c> does (table without its index, and its document).</summary>
    public static async Task<SpaceVersion> PublishAsync(TestDatabase db, SpaceDefinition space)
    {
        var version = await db.Catalog().EnsureVersionAsync(space.Name, space.Version, space.Dimension, space.Manifest.ToCanonicalJson(), createIndex: false);
        await new VersionDocuments(db.DataSource).SaveAsync(version, space.ToJson().ToJsonString());
        return version;
    }

    /// <summary>Settings of a re-embedding process: the harness's (database, models, cache) on the test class's broker.</summary>
    public static Dictionary<string, string?> Settings(IngestionHarness h, RabbitMqVirtualHost broker, int batchSize, int sampleSize)
    {
        var settings = h.Settings();
        settings["Messaging:Transport"] = "RabbitMq";
        settings["Messaging:RabbitMq"] = broker.Uri;
        settings["Reembedding:BatchSize"] = batchSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["Reembedding:WindowBatches"] = "4";
        settings["Reembedding:VerifySampleSize"] = sampleSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["Reembedding:WatchdogInterval"] = "00:00:03";
        settings["Reembedding:StartOnPublish"] = "false";
        return settings;
    }

    /// <summary>A saga host and worker in this process, composed as `freebind reembed host` composes them.</summary>
    public static async Task<IHost> StartHostAsync(Dictionary<string, string?> settings, ReembeddingRoles roles)
    {
        var host = CliHost.Build(builder =>
        {
            builder.Configuration.AddInMemoryCollection(settings);
            builder.AddItemPipeline();
            builder.AddReembedding(roles);
        });
        await host.StartAsync();
        return host;
    }

    public static SagaStore<ReembeddingRun> Runs(TestDatabase db) => new(db.DataSource, ReembeddingHosting.RunsTable);

    /// <summary>Polls the stored run until it reaches <paramref name="state"/>; fails at once on a failed run.</summary>
    public static async Task<ReembeddingRun> WaitForAsync(TestDatabase db, Guid id, string state, TimeSpan? timeout = null, Func<string>? logs = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(3));
        ReembeddingRun? run = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                run = await Runs(db).LoadAsync(id);
            }
            catch (Npgsql.NpgsqlException)
            {
                // Postgres may be down on purpose.
            }
            if (run?.CurrentState == state) return run;
            if (run?.CurrentState is "Failed" or "Failing" or "Cancelled" && state is not ("Failed" or "Cancelled")) break;
            await Task.Delay(100);
        }
        throw new Xunit.Sdk.XunitException(
            $"run {id} did not reach {state}; it is {run?.CurrentState ?? "missing"}: {run?.Reason} (done {run?.Done}/{run?.Items}, " +
            $"batches {run?.CompletedBatches.Count}/{run?.NextSequence}, findings: {string.Join("; ", run?.Findings ?? [])})\n{logs?.Invoke()}");
    }

    /// <summary>
    /// The version holds exactly <paramref name="items"/> (no other id, none missing), each vector
    /// within 1e-5 of the item embedded from scratch from its content with <paramref name="space"/>.
    /// </summary>
    public static async Task AssertFromScratchAsync(EngineFixture engine, TestDatabase db, SpaceVersion version, SpaceDefinition space, IEnumerable<Item> items)
    {
        var expected = items.ToList();
        Assert.Equal(expected.Select(i => i.Id).Order(StringComparer.Ordinal),
            (await db.ListAsync<string>($"SELECT media_id FROM \"{version.TableName}\"")).Order(StringComparer.Ordinal));
        var store = db.Store();
        // Embedded concurrently, so the encoders' micro-batchers see full batches.
        var fresh = await Task.WhenAll(expected.Select(item => engine.Embedder.EmbedAsync(space, item.Content)));
        for (var i = 0; i < expected.Count; i++)
        {
            var stored = await store.GetEmbeddingAsync(version, expected[i].Id);
            Assert.NotNull(stored);
            var error = Jsonl.MaxAbsDiff(fresh[i].Vector, stored);
            Assert.True(error <= 1e-5f, $"{expected[i].Id} in {version.Key}: max error {error} against the from-scratch vector");
        }
    }

    /// <summary>Encoder rows run so far by the host's encoders, per model file of the given spaces.</summary>
    public static Dictionary<string, long> EncoderRows(IHost host, params SpaceDefinition[] spaces)
    {
        var encoders = host.Services.GetRequiredService<ExpertEncoders>();
        var rows = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var space in spaces)
            foreach (var plan in space.Plans.Values)
                foreach (var expert in plan.Experts)
                    rows[space.EncoderOf(expert, plan.Modality).Model] = encoders.Model(space, expert, plan.Modality).Batcher.Counters.Items;
        return rows;
    }
}
