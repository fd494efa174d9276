using System.Net;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using FreeBind.Consumers.Contracts;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Tests.Fusion;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit.Abstractions;

namespace FreeBind.Tests.Ingestion;

/// <summary>
/// What a real platform eventually sends: each finding of issue 7 as a scenario on a running worker.
/// Whatever the bytes, an event is stored once or dead-lettered once with a class, and the events
/// after it on every partition are stored.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class HostileEventTests(EngineFixture engine, ITestOutputHelper output)
{
    private static byte[] Utf8(string s) => System.Text.Encoding.UTF8.GetBytes(s);

    private static IEnumerable<(string, object)> Good(string prefix, int count) =>
        Enumerable.Range(0, count).Select(i => ($"{prefix}-{i:D3}", IngestionHarness.TextEvent($"{prefix}-{i:D3}", $"{prefix} caption {i}")));

    [Fact]
    public async Task Bodies_no_parser_expected_are_dead_lettered_once_and_the_worker_goes_on()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var worker = await h.StartWorkerAsync();
        var hostile = new (string Key, byte[]? Value, string Class)[]
        {
            ("h-float-schema", Utf8("""{"schema":1.5,"id":"h-float-schema","tenant":"acme","type":"upserted","modality":"text","text":"x"}"""), ErrorClasses.Schema),
            ("h-string-schema", Utf8("""{"schema":"1","id":"h-string-schema","tenant":"acme","type":"upserted","modality":"text","text":"x"}"""), ErrorClasses.Schema),
            ("h-huge-schema", Utf8("""{"schema":1e400,"id":"h-huge-schema","tenant":"acme","type":"upserted","modality":"text","text":"x"}"""), ErrorClasses.Schema),
            ("h-surrogate", Utf8("""{"id":"h-surrogate","tenant":"acme","type":"upserted","modality":"text","text":"lone \ud800 surrogate"}"""), ErrorClasses.Schema),
            ("h-surrogate-id", Utf8("""{"id":"h-surrogate-id\udfff","tenant":"acme","type":"upserted","modality":"text","text":"x"}"""), ErrorClasses.Schema),
            ("h-nul-metadata", Utf8("""{"id":"h-nul-metadata","tenant":"acme","type":"upserted","modality":"text","text":"x","metadata":{"a":"b\u0000c"}}"""), ErrorClasses.Schema),
            ("h-nul-key-in-metadata", Utf8("""{"id":"h-nul-key-in-metadata","tenant":"acme","type":"upserted","modality":"text","text":"x","metadata":{"a\u0000":1}}"""), ErrorClasses.Schema),
            ("h-huge-number", Utf8("""{"id":"h-huge-number","tenant":"acme","type":"upserted","modality":"text","text":"x","metadata":{"n":1e999999}}"""), ErrorClasses.Schema),
            ("h-nul-tenant", Utf8("""{"id":"h-nul-tenant","tenant":"ac\u0000me","type":"upserted","modality":"text","text":"x"}"""), ErrorClasses.Schema),
            ("h-duplicate", Utf8("""{"id":"h-duplicate","id":"other","tenant":"acme","type":"upserted","modality":"text","text":"x"}"""), ErrorClasses.InvalidJson),
            ("h-not-utf8-name", [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D], ErrorClasses.Schema), // {"\xFF\xFE":1}: an object without an id
            ("h-not-utf8-value", [.. Utf8("{\"id\":\"h-not-utf8-value\",\"tenant\":\"a"), 0xFF, .. Utf8("\",\"type\":\"upserted\",\"modality\":\"text\",\"text\":\"x\"}")], ErrorClasses.Schema),
            ("h-tombstone", null, ErrorClasses.InvalidJson),
            ("h-deep", Utf8(new string('[', 5000) + new string(']', 5000)), ErrorClasses.InvalidJson),
            ("h-array-text", Utf8("""{"id":"h-array-text","tenant":"acme","type":"upserted","modality":"text","text":["x"]}"""), ErrorClasses.Schema),
            ("h-text-data-not-utf8", Utf8($$"""{"id":"h-text-data-not-utf8","tenant":"acme","type":"upserted","modality":"text","data":"{{Convert.ToBase64String([0xC3, 0x28])}}"}"""), ErrorClasses.Schema),
        };
        foreach (var (key, value, _) in hostile) await h.ProduceBytesAsync(Utf8(key), value);
        // A key that is not UTF-8 at all, with a valid body: refused as a key/id mismatch, and its key bytes survive.
        byte[] badKey = [0xFF, 0x00, 0xFE];
        await h.ProduceBytesAsync(badKey, Utf8("""{"id":"ok","tenant":"acme","type":"upserted","modality":"text","text":"x"}"""));
        // NUL inside a caption is content, not a defect: it is stored (content is kept as bytes).
        await h.ProduceAsync([("nul-in-text", IngestionHarness.TextEvent("nul-in-text", "before\0after"))]);
        await h.ProduceAsync(Good("good", 40));

        await worker.Metrics.WaitForCompletedAsync(hostile.Length + 1 + 1 + 40, TimeSpan.FromMinutes(2));
        Assert.Equal(41, await h.RowCountAsync());
        Assert.Equal(Utf8("before\0after"), await h.Database.Store().GetContentAsync("nul-in-text"));

        var dead = h.DeadLetters(hostile.Length + 1);
        Assert.Equal(hostile.Length + 1, dead.Count);
        foreach (var (key, value, errorClass) in hostile)
        {
            var (message, letter) = Assert.Single(dead, d => d.Message.Message.Key is { } k && k.AsSpan().SequenceEqual(Utf8(key)));
            output.WriteLine($"{key}: {letter.ErrorClass}: {letter.ErrorMessage}");
            Assert.Equal(errorClass, letter.ErrorClass);
            Assert.Equal(value, message.Message.Value);
        }
        Assert.Equal(ErrorClasses.Schema, Assert.Single(dead, d => d.Message.Message.Key is { } k && k.AsSpan().SequenceEqual(badKey)).Letter.ErrorClass);
        Assert.Null(worker.Services.GetRequiredService<FreeBind.Consumers.Ingestion.IngestionWorker>().Fault);
    }

    [Fact]
    public async Task A_permanent_postgres_refusal_of_one_item_dead_letters_it_and_the_rest_of_its_batch_is_written()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        await h.Database.ScalarAsync<int>("""
            CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.id = 'refused' OR NEW.metadata ? 'refuse' THEN
                    RAISE EXCEPTION 'refused by a test trigger';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_marked BEFORE INSERT OR UPDATE ON media FOR EACH ROW EXECUTE FUNCTION refuse_marked();
            SELECT 1;
            """);
        var worker = await h.StartWorkerAsync(overrides: new Dictionary<string, string?> { ["Ingestion:WriteLingerMs"] = "500" });
        // All in one burst, so the refused items share batches with good ones; "twice" is good, then refused.
        var events = new List<(string, object)>(Good("a", 20))
        {
            ("refused", IngestionHarness.TextEvent("refused", "never stored")),
            ("twice", IngestionHarness.TextEvent("twice", "first version")),
            ("twice", new { id = "twice", tenant = "acme", type = "upserted", modality = "text", text = "second version", metadata = new { refuse = true } }),
        };
        events.AddRange(Good("b", 20));
        await h.ProduceAsync(events);

        await worker.Metrics.WaitForCompletedAsync(events.Count, TimeSpan.FromMinutes(2));
        Assert.Equal(41, await h.RowCountAsync());
        var dead = h.DeadLetters(2);
        Assert.Equal(2, dead.Count);
        foreach (var (_, letter) in dead)
        {
            Assert.Equal(ErrorClasses.Database, letter.ErrorClass);
            Assert.Contains("P0001", letter.ErrorMessage);
            Assert.Contains("refused by a test trigger", letter.ErrorMessage);
        }
        Assert.Equal(["refused", "twice"], dead.Select(d => System.Text.Encoding.UTF8.GetString(d.Message.Message.Key)).Order());
        // The refused last event of "twice" gave way to the one before it, as if applied one by one.
        var space = EngineFixture.Load("imagebind");
        var expected = await engine.Embedder.EmbedAsync(space, MediaInput.FromText("first version"));
        Assert.True(Jsonl.MaxAbsDiff(expected.Vector, (await h.Database.Store().GetEmbeddingAsync(await h.ActiveVersionAsync(), "twice"))!) <= 1e-5f);
        var published = h.ReadTopic(h.OutputTopic, 41, TimeSpan.FromSeconds(30));
        Assert.Equal(41, published.Count);
        Assert.DoesNotContain(published, m => m.Message.Key == "refused");
    }

    /// <summary>Fails every request to one host with an exception type nobody handles (a stand-in for a bug).</summary>
    private sealed class BuggyHandler : HttpMessageHandler
    {
        public int Calls;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            throw new InvalidOperationException($"simulated bug while fetching {request.RequestUri}");
        }
    }

    [Fact]
    public async Task An_unforeseen_failure_is_dead_lettered_as_internal_after_bounded_attempts_and_the_worker_goes_on()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var handler = new BuggyHandler();
        var worker = await h.StartWorkerAsync(
            overrides: new Dictionary<string, string?> { ["Content:AllowedHttpHosts:0"] = "bug.test", ["Ingestion:UnforeseenAttempts"] = "3" },
            configure: b => b.Services.AddSingleton<HttpMessageHandler>(handler));
        await h.ProduceAsync([("buggy", new { id = "buggy", tenant = "acme", type = "upserted", modality = "image", uri = "http://bug.test/x.jpg" })]);
        await h.ProduceAsync(Good("after", 10));

        await worker.Metrics.WaitForCompletedAsync(11, TimeSpan.FromMinutes(2));
        Assert.Equal(10, await h.RowCountAsync());
        var (_, letter) = Assert.Single(h.DeadLetters(1));
        Assert.Equal(ErrorClasses.Internal, letter.ErrorClass);
        Assert.Equal(3, letter.Attempts);
        Assert.Equal(3, handler.Calls);
        Assert.StartsWith("System.InvalidOperationException: simulated bug", letter.ErrorMessage);
    }

    [Fact]
    public async Task An_oversize_event_too_large_for_the_dead_letter_topic_goes_there_without_its_value_and_nothing_is_republished()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        // The producer of this worker can carry 100 kB: the copy of a 400 kB event cannot go whole.
        var settings = new Dictionary<string, string?> { ["Kafka:Producer:message.max.bytes"] = "100000" };
        var worker = await h.StartWorkerAsync(overrides: settings);
        var big = Utf8(JsonSerializer.Serialize(new { id = "big", tenant = "acme", type = "upserted", modality = "image", data = Convert.ToBase64String(new byte[300_000]) }));
        await h.ProduceAsync(Good("before", 5));
        await h.ProduceBytesAsync(Utf8("big"), big);
        await h.ProduceAsync(Good("after", 5));
        await worker.Metrics.WaitForCompletedAsync(11, TimeSpan.FromMinutes(2));

        var (message, letter) = Assert.Single(h.DeadLetters(1));
        Assert.Equal(ErrorClasses.Oversize, letter.ErrorClass);
        Assert.True(letter.ValueDropped);
        Assert.Equal(big.Length, letter.ValueBytes);
        Assert.Equal(MediaEventParser.Sha256Hex(big), letter.ValueSha256);
        Assert.Null(message.Message.Value);
        Assert.Equal(Utf8("big"), message.Message.Key);

        // Its offset was committed with the rest: a restarted member republishes nothing.
        await h.StopWorkerAsync(worker);
        var again = await h.StartWorkerAsync(overrides: settings);
        await h.ProduceAsync(Good("restart", 1));
        await again.Metrics.WaitForCompletedAsync(1, TimeSpan.FromMinutes(2));
        Assert.Equal(1, again.Metrics.Completed);
        Assert.Equal(11, h.ReadTopic(h.OutputTopic, 11, TimeSpan.FromSeconds(20)).Count);
        Assert.Single(h.DeadLetters(1));
    }

    [Fact]
    public async Task An_id_upserted_again_with_another_modality_keeps_only_the_new_atoms()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var worker = await h.StartWorkerAsync();
        await h.ProduceAsync([("shape-shifter", IngestionHarness.FileEvent("shape-shifter", "image", "BBQ.jpeg"))]);
        await worker.Metrics.WaitForCompletedAsync(1, TimeSpan.FromMinutes(2));
        var space = EngineFixture.Load("imagebind");
        Assert.Equal([space.ModelDigest("imagebind", Modality.Image)], (await h.Database.Store().GetAtomsAsync("shape-shifter")).Select(a => a.ModelDigest));

        await h.ProduceAsync([("shape-shifter", IngestionHarness.TextEvent("shape-shifter", "now a caption"))]);
        await worker.Metrics.WaitForCompletedAsync(2, TimeSpan.FromMinutes(2));

        var atoms = await h.Database.Store().GetAtomsAsync("shape-shifter");
        Assert.Equal([space.ModelDigest("imagebind", Modality.Text)], atoms.Select(a => a.ModelDigest));
        Assert.Equal("text", await h.Database.ScalarAsync<string>("SELECT modality FROM media WHERE id = 'shape-shifter'"));
        Assert.Equal(Utf8("now a caption"), await h.Database.Store().GetContentAsync("shape-shifter"));
    }

    [Fact]
    public async Task A_cache_hit_is_stored_with_its_atoms_which_outlive_the_item_first_encoded()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var worker = await h.StartWorkerAsync();
        await h.ProduceAsync([("first", IngestionHarness.TextEvent("first", "identical content"))]);
        await worker.Metrics.WaitForCompletedAsync(1, TimeSpan.FromMinutes(2));
        await h.ProduceAsync([("second", IngestionHarness.TextEvent("second", "identical content"))]);
        await worker.Metrics.WaitForCompletedAsync(2, TimeSpan.FromMinutes(2));
        Assert.Equal(1, worker.Metrics.CacheHits);

        var store = h.Database.Store();
        var firstAtoms = await store.GetAtomsAsync("first");
        var secondAtoms = await store.GetAtomsAsync("second");
        Assert.NotEmpty(secondAtoms);
        Assert.Equal(firstAtoms.Select(a => (a.Expert, a.ModelDigest, a.Vector.ToArray())), secondAtoms.Select(a => (a.Expert, a.ModelDigest, a.Vector.ToArray())), new AtomComparer());
        var published = h.ReadTopic(h.OutputTopic, 2, TimeSpan.FromSeconds(20)).ToDictionary(m => m.Message.Key, m => MediaEmbedded.Parse(m.Message.Value));
        Assert.False(published["first"].Cached);
        Assert.True(published["second"].Cached);

        // Deleting the item that was encoded leaves the hit whole: a re-fusion of its own atoms gives its vector.
        await h.ProduceAsync([("first", new { id = "first", tenant = "acme", type = "deleted" })]);
        await worker.Metrics.WaitForCompletedAsync(3, TimeSpan.FromMinutes(2));
        var atoms = (await store.GetAtomsAsync("second")).ToDictionary(a => a.Expert, a => a.Vector.ToArray());
        var space = EngineFixture.Load("imagebind");
        var refused = await engine.Fusion.FuseAsync(space, Modality.Text, atoms);
        Assert.True(Jsonl.MaxAbsDiff(refused, (await store.GetEmbeddingAsync(await h.ActiveVersionAsync(), "second"))!) <= 1e-5f);
    }

    [Fact]
    public async Task A_cache_entry_in_an_old_format_or_with_malformed_atoms_is_a_miss_and_the_item_is_encoded()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var worker = await h.StartWorkerAsync();
        var version = await h.ActiveVersionAsync();
        var space = EngineFixture.Load("imagebind");
        var expert = space.Plans[Modality.Text].Experts.Single();
        var digest = space.ModelDigest(expert, Modality.Text);

        // What Redis may hold under an item's key (the layout of Persistence's CacheValue): a vector
        // that is not the item's, followed by nothing (written before entries carried atoms), by
        // atoms cut short, or by well-formed atoms of another model.
        var vector = MemoryMarshal.AsBytes(Enumerable.Repeat(0.03125f, version.Dimension).ToArray().AsSpan()).ToArray();
        static byte[] Text(string s) => [.. BitConverter.GetBytes((ushort)Utf8(s).Length), .. Utf8(s)];
        byte[] Atom(string model) => [.. Text(expert), .. Text(model), .. BitConverter.GetBytes(version.Dimension), .. vector];
        var entries = new Dictionary<string, byte[]>
        {
            ["old-format"] = vector,
            ["cut-short"] = [.. vector, .. "FBA1"u8, .. BitConverter.GetBytes((ushort)1), .. Atom(digest)[..^4]],
            ["other-model"] = [.. vector, .. "FBA1"u8, .. BitConverter.GetBytes((ushort)1), .. Atom("sha256:" + new string('0', 64))],
        };
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(global::FreeBind.Tests.Services.ServiceEnvironment.Redis);
        string KeyOf(string id) => $"{h.CachePrefix}:emb:{version.Key}:text:{Convert.ToHexStringLower(SHA256.HashData(Utf8($"caption of {id}")))}";
        foreach (var (id, value) in entries)
            await redis.GetDatabase().StringSetAsync(KeyOf(id), value);

        await h.ProduceAsync(entries.Keys.Select(id => (id, (object)IngestionHarness.TextEvent(id, $"caption of {id}"))));
        await worker.Metrics.WaitForCompletedAsync(entries.Count, TimeSpan.FromMinutes(2));

        Assert.Equal(0, worker.Metrics.CacheHits);
        var store = h.Database.Store();
        foreach (var (id, planted) in entries)
        {
            // Encoded: the item's own atom, and its vector fused from it (not the entry's vector).
            var atoms = (await store.GetAtomsAsync(id)).ToDictionary(a => a.Expert, a => a.Vector.ToArray());
            Assert.Equal([expert], atoms.Keys);
            Assert.Equal([digest], (await store.GetAtomsAsync(id)).Select(a => a.ModelDigest));
            var expected = await engine.Embedder.EmbedAsync(space, MediaInput.FromText($"caption of {id}"));
            var stored = (await store.GetEmbeddingAsync(version, id))!;
            Assert.True(Jsonl.MaxAbsDiff(expected.Vector, stored) <= 1e-5f, $"{id}: the stored vector is not the item's embedding (the entry was taken as a hit)");
            Assert.True(Jsonl.MaxAbsDiff(await engine.Fusion.FuseAsync(space, Modality.Text, atoms), stored) <= 1e-5f, $"{id}: the stored vector is not fused from the stored atoms");
            // The key the entry was planted under is the one the worker looked up: it wrote a whole entry there.
            var now = (byte[])(await redis.GetDatabase().StringGetAsync(KeyOf(id)))!;
            Assert.NotEqual(planted, now);
            Assert.True(now.Length > vector.Length + 4 && now.AsSpan(vector.Length, 4).SequenceEqual("FBA1"u8), $"{id}: the entry was not rewritten with its atoms");
        }
        output.WriteLine($"{entries.Count} planted entries: 0 hits, each item encoded and its entry rewritten");
    }

    private sealed class AtomComparer : IEqualityComparer<(string, string, float[])>
    {
        public bool Equals((string, string, float[]) x, (string, string, float[]) y) => x.Item1 == y.Item1 && x.Item2 == y.Item2 && x.Item3.AsSpan().SequenceEqual(y.Item3);

        public int GetHashCode((string, string, float[]) obj) => HashCode.Combine(obj.Item1, obj.Item2);
    }
}
