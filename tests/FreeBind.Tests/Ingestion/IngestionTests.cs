using System.Text.Json;
using FreeBind.Consumers.Contracts;
using FreeBind.Encoding;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Tags;
using FreeBind.Tests.Fusion;
using Xunit.Abstractions;

namespace FreeBind.Tests.Ingestion;

/// <summary>The worker end to end: Kafka events → experts → bonds → pgvector, tags and the output topic.</summary>
[Collection(EngineCollection.Name)]
public sealed class IngestionTests(EngineFixture engine, ITestOutputHelper output)
{
    private static readonly string[] Labels = ["barbeque", "toilet", "train", "dog"];

    private static List<(string Key, object Value)> MixedEvents(int texts)
    {
        var events = new List<(string, object)>();
        foreach (var (file, modality) in new[] { ("BBQ.jpeg", "image"), ("toilet.jpeg", "image"), ("train.jpeg", "image"), ("BBQ.wav", "audio"), ("toilet.wav", "audio"), ("train.wav", "audio") })
            events.Add(($"media-{file}", IngestionHarness.FileEvent($"media-{file}", modality, file)));
        for (var i = 0; i < texts; i++)
            events.Add(($"text-{i:D4}", IngestionHarness.TextEvent($"text-{i:D4}", $"an audio of item number {i} in the archive")));
        return events;
    }

    [Fact]
    public async Task Events_become_rows_equal_to_fusing_their_atoms_and_a_replay_changes_nothing()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind++");
        await new TagVocabularyStore(h.Database.DataSource).UpsertAsync("acme", "sounds", Labels);
        var first = await h.StartWorkerAsync();
        var events = MixedEvents(494);
        await h.ProduceAsync(events);
        await h.WaitForRowsAsync(500, TimeSpan.FromMinutes(3));

        // Correct vectors: each row equals `freebind fuse` of its stored atoms.
        var version = await h.ActiveVersionAsync();
        var space = EngineFixture.Load("imagebind++");
        Assert.Equal(space.Version, version.Digest);
        var store = h.Database.Store();
        var ids = new[] { "media-BBQ.jpeg", "media-train.wav", "text-0000", "text-0123", "text-0493" };
        foreach (var id in ids)
        {
            var atoms = (await store.GetAtomsAsync(id)).ToDictionary(a => a.Expert, a => a.Vector.ToArray());
            var modality = id.EndsWith(".jpeg", StringComparison.Ordinal) ? Modality.Image : id.EndsWith(".wav", StringComparison.Ordinal) ? Modality.Audio : Modality.Text;
            Assert.Equal(space.Plans[modality].Experts.Order(), atoms.Keys.Order());
            var expected = await engine.Fusion.FuseAsync(space, modality, atoms);
            var stored = (await store.GetEmbeddingAsync(version, id))!;
            Assert.True(Jsonl.MaxAbsDiff(expected, stored) <= 1e-5f, id);
        }

        // Tags are published on the output topic, exactly one message per item: the whole topic is
        // read once every event is done (its delivery acknowledged), so a duplicate is counted.
        await first.Metrics.WaitForCompletedAsync(500, TimeSpan.FromMinutes(1));
        var published = h.ReadWholeTopic(h.OutputTopic, TimeSpan.FromSeconds(30));
        Assert.Equal(500, published.Count);
        Assert.Equal(events.Select(e => e.Key).Order(StringComparer.Ordinal), published.Select(m => m.Message.Key).Order(StringComparer.Ordinal));
        foreach (var message in published)
        {
            using var result = JsonDocument.Parse(message.Message.Value);
            Assert.Equal(space.Version, result.RootElement.GetProperty("space_version").GetString());
            Assert.Equal(Labels.Length, result.RootElement.GetProperty("tags").GetArrayLength());
        }
        Assert.Equal(500L, await h.Database.ScalarAsync<long>("SELECT count(DISTINCT media_id) FROM media_tags"));

        // Replay from offset 0 with a new group: row count and content unchanged.
        var before = await Checksum(h, version.TableName);
        var replay = await h.StartWorkerAsync(group: h.Group + "-replay");
        await replay.Metrics.WaitForCompletedAsync(500, TimeSpan.FromMinutes(2));
        Assert.Equal(500, replay.Metrics.Completed);
        Assert.Equal(500, await h.RowCountAsync());
        Assert.Equal(before, await Checksum(h, version.TableName));
        output.WriteLine($"500 events → 500 rows; replay unchanged ({before})");
    }

    [Fact]
    public async Task Poison_messages_go_to_the_dead_letter_topic_with_their_reason_and_the_worker_carries_on()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        await h.StartWorkerAsync();
        var corruptJpeg = File.ReadAllBytes(TestPaths.Sample("BBQ.jpeg"))[..5000];
        var randomWav = new byte[4096];
        new Random(3).NextBytes(randomWav);
        var poison = new (string Key, string Value, string Class)[]
        {
            ("p-json", "{not json", ErrorClasses.InvalidJson),
            ("p-missing", """{"id":"p-missing","type":"upserted","modality":"text","text":"x"}""", ErrorClasses.Schema),
            ("p-modality", """{"id":"p-modality","tenant":"acme","type":"upserted","modality":"video","text":"x"}""", ErrorClasses.UnknownModality),
            ("p-jpeg", Json(new { id = "p-jpeg", tenant = "acme", type = "upserted", modality = "image", data = Convert.ToBase64String(corruptJpeg) }), "decode.truncated"),
            ("p-wav", Json(new { id = "p-wav", tenant = "acme", type = "upserted", modality = "audio", data = Convert.ToBase64String(randomWav) }), "decode.unsupported-format"),
            ("p-big", Json(new { id = "p-big", tenant = "acme", type = "upserted", modality = "image", data = Convert.ToBase64String(new byte[300_000]) }), ErrorClasses.Oversize),
            ("p-scheme", Json(new { id = "p-scheme", tenant = "acme", type = "upserted", modality = "image", uri = "ftp://example.org/x.jpg" }), ErrorClasses.ForbiddenUri),
            ("p-host", Json(new { id = "p-host", tenant = "acme", type = "upserted", modality = "image", uri = "http://example.org/x.jpg" }), ErrorClasses.ForbiddenUri),
            ("p-root", Json(new { id = "p-root", tenant = "acme", type = "upserted", modality = "image", uri = "file:///etc/passwd" }), ErrorClasses.ForbiddenUri),
        };
        await h.ProduceRawAsync(poison.Select(p => (p.Key, p.Value)));
        await h.ProduceAsync([("ok-1", IngestionHarness.TextEvent("ok-1", "still alive"))]);
        await h.WaitForRowsAsync(1, TimeSpan.FromMinutes(1));

        var dead = h.ReadTopic(h.DeadLetterTopic, poison.Length, TimeSpan.FromSeconds(30));
        Assert.Equal(poison.Length, dead.Count);
        foreach (var p in poison)
        {
            var m = dead.Single(d => d.Message.Key == p.Key);
            var headers = m.Message.Headers.ToDictionary(x => x.Key, x => System.Text.Encoding.UTF8.GetString(x.GetValueBytes()));
            output.WriteLine($"{p.Key}: {headers["freebind.error.class"]}: {headers["freebind.error.message"]}");
            Assert.Equal(p.Class, headers["freebind.error.class"]);
            Assert.Equal(h.Topic, headers["freebind.source.topic"]);
            Assert.Equal("1", headers["freebind.attempts"]);
            Assert.True(long.Parse(headers["freebind.source.offset"], System.Globalization.CultureInfo.InvariantCulture) >= 0);
            Assert.Equal(p.Value, System.Text.Encoding.UTF8.GetString(m.Message.Value)); // the original bytes
        }
    }

    [Fact]
    public async Task Events_of_one_key_apply_in_order_and_deletes_remove_vectors_atoms_and_tags()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        await new TagVocabularyStore(h.Database.DataSource).UpsertAsync("acme", "sounds", Labels);
        var worker = await h.StartWorkerAsync();
        // Many versions of the same items, then deletes of some, all in one burst: the last event per key wins.
        var events = new List<(string Key, object Value)>();
        for (var round = 0; round < 5; round++)
            for (var i = 0; i < 20; i++)
                events.Add(($"k{i}", IngestionHarness.TextEvent($"k{i}", $"item {i} version {round}")));
        for (var i = 0; i < 20; i += 4)
            events.Add(($"k{i}", new { id = $"k{i}", tenant = "acme", type = "deleted" }));
        events.Add(("never-seen", new { id = "never-seen", tenant = "acme", type = "deleted" }));
        await h.ProduceAsync(events);
        await worker.Metrics.WaitForCompletedAsync(events.Count, TimeSpan.FromMinutes(2));
        Assert.Equal(events.Count, worker.Metrics.Completed);

        Assert.Equal(15, await h.RowCountAsync());
        Assert.Equal(0L, await h.Database.ScalarAsync<long>("SELECT count(*) FROM atoms WHERE media_id IN ('k0','k4','k8','k12','k16')"));
        Assert.Equal(0L, await h.Database.ScalarAsync<long>("SELECT count(*) FROM media_tags WHERE media_id IN ('k0','k4','k8','k12','k16')"));
        Assert.True(await h.Database.ScalarAsync<long>("SELECT count(*) FROM media_tags") > 0);

        // The surviving items hold their last version: equal to embedding that text directly.
        var space = EngineFixture.Load("imagebind");
        var version = await h.ActiveVersionAsync();
        foreach (var i in new[] { 1, 7, 19 })
        {
            var expected = await engine.Embedder.EmbedAsync(space, global::FreeBind.Encoding.Preprocessing.MediaInput.FromText($"item {i} version 4"));
            Assert.True(Jsonl.MaxAbsDiff(expected.Vector, (await h.Database.Store().GetEmbeddingAsync(version, $"k{i}"))!) <= 1e-5f, $"k{i}");
        }
    }

    [Fact]
    public async Task A_full_encoder_queue_pauses_the_partitions_and_memory_stays_bounded()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var worker = await h.StartWorkerAsync(overrides: new Dictionary<string, string?> { ["Ingestion:MaxInFlight"] = "8", ["Ingestion:ResumeInFlight"] = "2" });
        var events = Enumerable.Range(0, 200).Select(i => ($"bp-{i}", IngestionHarness.TextEvent($"bp-{i}", $"back-pressure {i}"))).ToList();
        await h.ProduceAsync(events.Select(e => (e.Item1, (object)e.Item2)));
        await h.WaitForRowsAsync(200, TimeSpan.FromMinutes(2));
        output.WriteLine($"pauses {worker.Metrics.Pauses}, peak in flight {worker.Metrics.PeakInFlight}");
        Assert.True(worker.Metrics.Pauses > 0, "the partitions were never paused");
        Assert.True(worker.Metrics.PeakInFlight <= 8, $"{worker.Metrics.PeakInFlight} messages were in flight with Ingestion:MaxInFlight=8");
    }

    private static string Json(object value) => JsonSerializer.Serialize(value);

    private static Task<string> Checksum(IngestionHarness h, string table) =>
        h.Database.ScalarAsync<string>($"SELECT md5(string_agg(media_id || ':' || embedding::text || ':' || updated_at::text, ',' ORDER BY media_id)) FROM \"{table}\"");
}
