using System.Text.Json;
using Confluent.Kafka;
using FreeBind.Consumers.Kafka.Embedded;

namespace FreeBind.Benchmarks.Ingestion;

/// <summary>
/// What every case of one run shares: the services, librdkafka's mock cluster (in this process, the
/// same cluster <c>Kafka:Embedded=true</c> starts), the space, and a run id that makes every text
/// (hence every content digest) new; each case also gets its own Redis key prefix, so a miss is a miss.
/// </summary>
internal sealed class BenchContext : IDisposable
{
    public const int Partitions = 6; // the worker's Kafka:EmbeddedPartitions default
    private int _topics;

    public BenchContext(string root, string postgres, string redis, string space)
    {
        Root = root;
        Postgres = postgres;
        Redis = redis;
        Space = space;
        RunId = Guid.NewGuid().ToString("N")[..8];
        Cluster = MockKafkaCluster.Start(brokers: 1, groupInitialRebalanceDelay: TimeSpan.FromMilliseconds(100));
        Producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = Cluster.BootstrapServers,
            EnableIdempotence = true,
            Acks = Acks.All,
            LingerMs = 5,
        }).Build();
    }

    public string Root { get; }
    public string Postgres { get; }
    public string Redis { get; }
    public string Space { get; }
    public string RunId { get; }
    public MockKafkaCluster Cluster { get; }
    public IProducer<string, string> Producer { get; }

    /// <summary>Three fresh topics (events, embedded, dead letters) and a fresh group id.</summary>
    public (string Topic, string Output, string DeadLetter, string Group) NewTopics()
    {
        var n = Interlocked.Increment(ref _topics);
        var suffix = $"{RunId}-{n}";
        var names = ("bench.events." + suffix, "bench.embedded." + suffix, "bench.dlq." + suffix, "bench-" + suffix);
        foreach (var t in new[] { names.Item1, names.Item2, names.Item3 }) Cluster.CreateTopic(t, Partitions);
        return names;
    }

    /// <summary>The worker's settings (configuration keys, as `freebind run` reads them), before overrides.</summary>
    public Dictionary<string, string?> Settings(string connectionString, (string Topic, string Output, string DeadLetter, string Group) topics) => new()
    {
        ["Spaces:ManifestDirectory"] = Path.Combine(Root, "spaces"),
        ["Spaces:ModelRoot"] = Path.Combine(Environment.GetEnvironmentVariable("FREEBIND_TESTDATA") is { Length: > 0 } data
            ? data : Path.Combine(Root, ".work", "testdata"), "models"),
        ["Spaces:Default"] = Space,
        ["Onnx:ExecutionProvider"] = "cpu",
        ["Onnx:VerifyProjectors"] = "false",
        ["Persistence:ConnectionString"] = connectionString,
        ["Cache:Redis"] = Redis,
        // A key prefix per case: the same texts in another case are misses again.
        ["Cache:KeyPrefix"] = "freebind-" + topics.Group,
        ["Cache:Ttl"] = "00:30:00",
        ["Kafka:BootstrapServers"] = Cluster.BootstrapServers,
        ["Kafka:GroupId"] = topics.Group,
        ["Kafka:Topic"] = topics.Topic,
        ["Kafka:OutputTopic"] = topics.Output,
        ["Kafka:DeadLetterTopic"] = topics.DeadLetter,
    };

    /// <summary>Distinct captions: <paramref name="count"/> from <paramref name="first"/>, unique to this run.</summary>
    public IReadOnlyList<string> Texts(int first, int count)
    {
        string[] subjects = ["a dog", "two cats", "an old train", "a red barbeque", "a kitchen", "a crowded street", "a small boat", "the mountains"];
        string[] verbs = ["seen at dusk", "in the rain", "on a sunny morning", "near the station", "covered in snow", "from above", "after the storm"];
        string[] extras = ["with people talking", "and a distant siren", "beside a river", "under bright lights", "in black and white"];
        return [.. Enumerable.Range(first, count).Select(i =>
            $"{subjects[i % subjects.Length]} {verbs[i / subjects.Length % verbs.Length]} {extras[i / 56 % extras.Length]}, take {i} of run {RunId}")];
    }

    public static string TextEvent(string id, string text) =>
        JsonSerializer.Serialize(new { id, tenant = "bench", type = "upserted", modality = "text", text });

    public static string FileEvent(string id, string modality, Uri uri) =>
        JsonSerializer.Serialize(new { id, tenant = "bench", type = "upserted", modality, uri = uri.AbsoluteUri });

    /// <summary>Produces and waits for every delivery (acks=all).</summary>
    public async Task ProduceAsync(string topic, IEnumerable<(string Key, string Value)> messages)
    {
        var deliveries = messages.Select(m => Producer.ProduceAsync(topic, new Message<string, string> { Key = m.Key, Value = m.Value })).ToList();
        await Task.WhenAll(deliveries);
    }

    public void Dispose()
    {
        Producer.Dispose();
        Cluster.Dispose();
    }
}
