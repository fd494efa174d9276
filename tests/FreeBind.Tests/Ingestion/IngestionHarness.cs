using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using FreeBind.Consumers.Cli;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Ingestion;
using FreeBind.Consumers.Kafka.Embedded;
using FreeBind.Persistence.Spaces;
using FreeBind.Tests.Persistence;
using FreeBind.Tests.Services;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using System.Diagnostics.Metrics;

namespace FreeBind.Tests.Ingestion;

/// <summary>A worker hosted in this process, and what it reports through its metrics.</summary>
public sealed record RunningWorker(IHost Host, IngestionMetricsListener Metrics)
{
    public IServiceProvider Services => Host.Services;
}

/// <summary>
/// One ingestion scenario against real services: a private database, Redis (under a key prefix of
/// its own, so no scenario sees another's cache), and librdkafka's mock cluster in this process
/// (workers in child processes reach it over loopback). Workers run in-process (a host like
/// `freebind run`) or as real `freebind run` processes.
/// </summary>
public sealed class IngestionHarness : IAsyncDisposable
{
    private readonly List<Process> _processes = [];

    private IngestionHarness(TestDatabase db, MockKafkaCluster cluster, string space)
    {
        Database = db;
        Cluster = cluster;
        Space = space;
        var suffix = Guid.NewGuid().ToString("N")[..8];
        Topic = "media.events." + suffix;
        OutputTopic = "media.embedded." + suffix;
        DeadLetterTopic = "media.events.dlq." + suffix;
        Group = "freebind-" + suffix;
        CachePrefix = "freebind-test-" + suffix;
        foreach (var t in new[] { Topic, OutputTopic, DeadLetterTopic }) cluster.CreateTopic(t, Partitions, replicationFactor: Math.Min(3, cluster.Brokers));
        Producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            EnableIdempotence = true,
            Acks = Acks.All,
            MessageTimeoutMs = 60_000,
            LingerMs = 5,
        }).Build();
        RawProducer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            EnableIdempotence = true,
            Acks = Acks.All,
            MessageTimeoutMs = 60_000,
            MessageMaxBytes = 8_000_000,
        }).Build();
    }

    public const int Partitions = 4;
    public TestDatabase Database { get; }
    public MockKafkaCluster Cluster { get; }
    public string Space { get; }
    public string Topic { get; }
    public string OutputTopic { get; }
    public string DeadLetterTopic { get; }
    public string Group { get; }
    public string CachePrefix { get; }
    public IProducer<string, string> Producer { get; }

    /// <summary>Produces any bytes (or none) as key and value, with headers: what a hostile producer can send.</summary>
    public IProducer<byte[]?, byte[]?> RawProducer { get; }

    public static async Task<IngestionHarness> StartAsync(string space = "imagebind", int brokers = 1) =>
        new(await TestDatabase.CreateAsync(), MockKafkaCluster.Start(brokers, TimeSpan.FromSeconds(1)), space);

    /// <summary>Settings of a worker, as `freebind run` reads them (configuration keys).</summary>
    public Dictionary<string, string?> Settings(string? group = null) => new()
    {
        ["Spaces:ManifestDirectory"] = Path.Combine(TestPaths.RepoRoot, "spaces"),
        ["Spaces:ModelRoot"] = TestPaths.Data("models"),
        ["Spaces:Default"] = Space,
        ["Onnx:ExecutionProvider"] = "cpu",
        ["Onnx:VerifyProjectors"] = "false",
        ["Onnx:MaxWaitMs"] = "2",
        ["Persistence:ConnectionString"] = Database.ConnectionString,
        ["Cache:Redis"] = ServiceEnvironment.Redis,
        ["Cache:KeyPrefix"] = CachePrefix,
        ["Kafka:BootstrapServers"] = Cluster.BootstrapServers,
        ["Kafka:GroupId"] = group ?? Group,
        ["Kafka:Topic"] = Topic,
        ["Kafka:OutputTopic"] = OutputTopic,
        ["Kafka:DeadLetterTopic"] = DeadLetterTopic,
        ["Kafka:Consumer:session.timeout.ms"] = "6000",
        ["Content:AllowedFileRoots:0"] = TestPaths.Media,
        ["Content:MaxInlineBytes"] = "262144",
        ["Ingestion:MaxInFlight"] = "64",
        ["Ingestion:ResumeInFlight"] = "16",
        // The stand-in models' similarities carry no meaning: keep the top-k labels whatever their score.
        ["Tagging:Threshold"] = "-1",
    };

    /// <summary>Starts a worker in this process, as `freebind run` composes it; dispose the harness to stop it gracefully.</summary>
    public async Task<RunningWorker> StartWorkerAsync(string? group = null, IReadOnlyDictionary<string, string?>? overrides = null,
        Action<IHostApplicationBuilder>? configure = null)
    {
        var settings = Settings(group);
        foreach (var (key, value) in overrides ?? new Dictionary<string, string?>()) settings[key] = value;
        var host = CliHost.Build(builder =>
        {
            builder.Configuration.AddInMemoryCollection(settings);
            builder.AddIngestionWorker();
            configure?.Invoke(builder);
        });
        var worker = new RunningWorker(host, new IngestionMetricsListener(host.Services.GetRequiredService<IMeterFactory>()));
        _workers.Add(worker);
        await host.StartAsync();
        return worker;
    }

    private readonly List<RunningWorker> _workers = [];

    /// <summary>Stops an in-process worker gracefully (in-flight work finished, offsets committed).</summary>
    public async Task StopWorkerAsync(RunningWorker worker)
    {
        _workers.Remove(worker);
        await worker.Host.StopAsync(TimeSpan.FromSeconds(30));
        worker.Host.Dispose();
        worker.Metrics.Dispose();
    }

    /// <summary>The dead letters of the scenario, with their parsed headers.</summary>
    public List<(ConsumeResult<byte[], byte[]> Message, FreeBind.Consumers.Contracts.DeadLetter Letter)> DeadLetters(int expected, TimeSpan? timeout = null) =>
        [.. ReadTopic<byte[]>(DeadLetterTopic, expected, timeout ?? TimeSpan.FromSeconds(30))
            .Select(m => (m, FreeBind.Consumers.Contracts.DeadLetterHeaders.Read(m.Message.Headers.Select(h => (h.Key, h.GetValueBytes())))))];

    /// <summary>
    /// Records every write of a stored row (table <c>test_write_audit</c>): an <c>attempt</c> for each
    /// media row an upsert proposes (also the no-op ones of a replay: BEFORE INSERT fires before the
    /// conflict is checked) and a <c>write</c> for each row version really written in <c>media</c>,
    /// <c>atoms</c> and every space version's table (those a worker creates later too, through an
    /// event trigger on CREATE TABLE). Committed with the write, so an attempt rolled back leaves no
    /// trace. <paramref name="slowRows"/> makes each proposed media row take that long, so work
    /// stays in flight.
    /// </summary>
    public Task InstallWriteAuditAsync(TimeSpan? slowRows = null) => Database.ScalarAsync<int>($"""
        CREATE TABLE test_write_audit (tbl text NOT NULL, media_id text NOT NULL, part text NOT NULL DEFAULT '', kind text NOT NULL,
            at timestamptz NOT NULL DEFAULT clock_timestamp());
        CREATE FUNCTION test_audit_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO test_write_audit (tbl, media_id, kind) VALUES (TG_TABLE_NAME, NEW.id, 'attempt');
            PERFORM pg_sleep({(slowRows ?? TimeSpan.Zero).TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)});
            RETURN NEW;
        END $$;
        -- One function for every audited table: the row's item (media.id or media_id) and, for atoms, which atom.
        CREATE FUNCTION test_audit_write() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE r jsonb := to_jsonb(NEW);
        BEGIN
            INSERT INTO test_write_audit (tbl, media_id, part, kind)
            VALUES (TG_TABLE_NAME, coalesce(r->>'media_id', r->>'id'), coalesce((r->>'expert') || '/' || (r->>'model_digest'), ''), 'write');
            RETURN NULL;
        END $$;
        CREATE FUNCTION test_audit_table(t regclass) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE format('CREATE OR REPLACE TRIGGER test_audit_write AFTER INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION test_audit_write()', t);
        END $$;
        -- A space version's table: media_id + embedding (atoms has them too, and is audited the same way).
        CREATE FUNCTION test_audit_new_tables() RETURNS event_trigger LANGUAGE plpgsql AS $$
        DECLARE c record;
        BEGIN
            FOR c IN SELECT DISTINCT objid::regclass AS t FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table' AND schema_name = 'public' LOOP
                IF (SELECT count(*) FROM pg_attribute WHERE attrelid = c.t AND attname IN ('media_id', 'embedding') AND NOT attisdropped) = 2 THEN
                    PERFORM test_audit_table(c.t);
                END IF;
            END LOOP;
        END $$;
        CREATE EVENT TRIGGER test_audit_new_tables ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION test_audit_new_tables();
        DO $$
        DECLARE t regclass;
        BEGIN
            FOR t IN SELECT a.attrelid::regclass FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                     WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND a.attname IN ('media_id', 'embedding') AND NOT a.attisdropped
                     GROUP BY a.attrelid HAVING count(*) = 2 LOOP
                PERFORM test_audit_table(t);
            END LOOP;
        END $$;
        CREATE TRIGGER test_audit_attempt BEFORE INSERT ON media FOR EACH ROW EXECUTE FUNCTION test_audit_attempt();
        CREATE TRIGGER test_audit_write AFTER INSERT OR UPDATE ON media FOR EACH ROW EXECUTE FUNCTION test_audit_write();
        SELECT 1;
        """);

    /// <summary>
    /// Each produced id stored exactly once and nothing else stored (the table's ids are the
    /// produced set), and no row of media, atoms or the version's table written twice (needs
    /// <see cref="InstallWriteAuditAsync"/>): a replay must be absorbed, not rewritten.
    /// </summary>
    public async Task AssertExactlyOnceAsync(IEnumerable<string> produced)
    {
        var expected = produced.Distinct().Order(StringComparer.Ordinal).ToList();
        var version = await ActiveVersionAsync();
        Assert.Equal(expected, (await Database.ListAsync<string>($"SELECT media_id FROM \"{version.TableName}\"")).Order(StringComparer.Ordinal));
        Assert.Equal(expected, (await Database.ListAsync<string>("SELECT id FROM media")).Order(StringComparer.Ordinal));
        // The audit saw every table it is meant to (else a rewrite there could not show).
        var audited = await Database.ListAsync<string>("SELECT DISTINCT tbl FROM test_write_audit WHERE kind = 'write'");
        Assert.Superset(new HashSet<string> { "media", "atoms", version.TableName }, audited.ToHashSet());
        var rewritten = await Database.ListAsync<string>("""
            SELECT tbl || ' ' || media_id || (CASE WHEN part = '' THEN '' ELSE ' ' || part END) FROM test_write_audit
            WHERE kind = 'write' GROUP BY tbl, media_id, part HAVING count(*) > 1
            """);
        Assert.True(rewritten.Count == 0, $"{rewritten.Count} rows were written more than once, e.g. {string.Join(", ", rewritten.Take(5))}");
    }

    /// <summary>The sum of the group's committed offsets over the event topic's partitions (an OffsetFetch, without joining the group).</summary>
    public long CommittedOffsets()
    {
        using var reader = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = Cluster.BootstrapServers, GroupId = Group }).Build();
        var committed = reader.Committed(Enumerable.Range(0, Partitions).Select(p => new TopicPartition(Topic, p)), TimeSpan.FromSeconds(10));
        return committed.Sum(c => Math.Max(0, c.Offset.Value));
    }

    /// <summary>Ids whose row was proposed more than once (a redelivery absorbed by the idempotent upsert).</summary>
    public Task<List<string>> RedeliveredAsync() =>
        Database.ListAsync<string>("SELECT media_id FROM test_write_audit WHERE kind = 'attempt' GROUP BY media_id HAVING count(*) > 1");

    /// <summary>Starts `freebind run` as a child process (it can be killed for real).</summary>
    public Process StartWorkerProcess(string name, IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "freebind.dll"), "run"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        var settings = Settings();
        foreach (var (key, value) in overrides ?? new Dictionary<string, string?>()) settings[key] = value;
        foreach (var (key, value) in settings) psi.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start freebind run");
        var log = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine($"[{name}] {e.Data}"); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine($"[{name}] {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _processes.Add(process);
        _logs[process] = log;
        return process;
    }

    private readonly Dictionary<Process, StringBuilder> _logs = [];

    public string Logs() => string.Join("\n", _logs.Values.Select(l => { lock (l) return l.ToString(); }));

    public Task ProduceAsync(IEnumerable<(string Key, object Value)> events) =>
        ProduceRawAsync(events.Select(e => (e.Key, JsonSerializer.Serialize(e.Value))));

    public async Task ProduceRawAsync(IEnumerable<(string Key, string Value)> messages)
    {
        var deliveries = messages.Select(m => Producer.ProduceAsync(Topic, new Message<string, string> { Key = m.Key, Value = m.Value })).ToList();
        await Task.WhenAll(deliveries);
    }

    /// <summary>Produces one message as given, to a partition when one is named; returns where it landed.</summary>
    public Task<DeliveryResult<byte[]?, byte[]?>> ProduceBytesAsync(byte[]? key, byte[]? value, Headers? headers = null, int? partition = null)
    {
        var message = new Message<byte[]?, byte[]?> { Key = key, Value = value, Headers = headers ?? [] };
        return partition is { } p
            ? RawProducer.ProduceAsync(new TopicPartition(Topic, p), message)
            : RawProducer.ProduceAsync(Topic, message);
    }

    public static object TextEvent(string id, string text, string tenant = "acme") => new { id, tenant, type = "upserted", modality = "text", text };

    public static object FileEvent(string id, string modality, string file, string tenant = "acme") =>
        new { id, tenant, type = "upserted", modality, uri = new Uri(TestPaths.Sample(file)).AbsoluteUri };

    public async Task<SpaceVersion> ActiveVersionAsync()
    {
        var catalog = new SpaceCatalog(Database.DataSource, NullLogger<SpaceCatalog>.Instance);
        for (var i = 0; i < 600; i++)
        {
            if (await catalog.GetActiveAsync(Space) is { } v) return v;
            await Task.Delay(100);
        }
        throw new TimeoutException("no active space version appeared");
    }

    public async Task<long> RowCountAsync()
    {
        var version = await ActiveVersionAsync();
        return await Database.ScalarAsync<long>($"SELECT count(*) FROM \"{version.TableName}\"");
    }

    /// <summary>Polls until the embedding table holds <paramref name="expected"/> rows.</summary>
    public async Task WaitForRowsAsync(long expected, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        long rows = -1;
        while (watch.Elapsed < timeout)
        {
            try
            {
                rows = await RowCountAsync();
                if (rows >= expected) return;
            }
            catch (Npgsql.NpgsqlException)
            {
                // Postgres may be down on purpose in a fault test.
            }
            await Task.Delay(200);
        }
        throw new TimeoutException($"{rows} of {expected} rows after {timeout}\n{Logs()}");
    }

    /// <summary>Every message of a topic (from the start), by a throw-away consumer.</summary>
    public List<ConsumeResult<string, byte[]>> ReadTopic(string topic, int expected, TimeSpan timeout) =>
        ReadTopic<string>(topic, expected, timeout);

    /// <summary>Every message of a topic (from the start), keys deserialised as <typeparamref name="TKey"/> (byte[] for the raw bytes).</summary>
    public List<ConsumeResult<TKey, byte[]>> ReadTopic<TKey>(string topic, int expected, TimeSpan timeout)
    {
        using var consumer = new ConsumerBuilder<TKey, byte[]>(new ConsumerConfig
        {
            BootstrapServers = Cluster.BootstrapServers,
            GroupId = "reader-" + Guid.NewGuid().ToString("N")[..8],
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
        }).Build();
        consumer.Subscribe(topic);
        var result = new List<ConsumeResult<TKey, byte[]>>();
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < timeout && result.Count < expected)
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { Message: not null } r) result.Add(r);
        // A little longer, to catch extras beyond the expected count.
        var extra = Stopwatch.StartNew();
        while (extra.Elapsed < TimeSpan.FromSeconds(1))
            if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { Message: not null } r) result.Add(r);
        consumer.Close();
        return result;
    }

    /// <summary>
    /// Every message a topic holds now, each partition read from its start to its high watermark:
    /// no count to stop at, so a message published twice is read twice.
    /// </summary>
    public List<ConsumeResult<string, byte[]>> ReadWholeTopic(string topic, TimeSpan timeout)
    {
        using var consumer = new ConsumerBuilder<string, byte[]>(new ConsumerConfig
        {
            BootstrapServers = Cluster.BootstrapServers,
            GroupId = "reader-" + Guid.NewGuid().ToString("N")[..8],
            EnableAutoCommit = false,
        }).Build();
        var ends = Enumerable.Range(0, Partitions)
            .Select(p => new TopicPartition(topic, p))
            .ToDictionary(tp => tp, tp => consumer.QueryWatermarkOffsets(tp, timeout).High.Value);
        consumer.Assign(ends.Keys.Select(tp => new TopicPartitionOffset(tp, Offset.Beginning)));
        var result = new List<ConsumeResult<string, byte[]>>();
        var left = ends.Where(e => e.Value > 0).Select(e => e.Key).ToHashSet();
        var watch = Stopwatch.StartNew();
        while (left.Count > 0)
        {
            if (watch.Elapsed > timeout)
                throw new TimeoutException($"{topic}: {result.Count} messages read in {timeout.TotalSeconds:F0} s, partitions {string.Join(", ", left.Select(tp => tp.Partition.Value))} not read to their end");
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is not { Message: not null } r || r.Offset.Value >= ends[r.TopicPartition]) continue;
            result.Add(r);
            if (r.Offset.Value + 1 >= ends[r.TopicPartition]) left.Remove(r.TopicPartition);
        }
        consumer.Close();
        return result;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _processes)
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
            p.Dispose();
        }
        foreach (var worker in _workers)
        {
            try
            {
                await worker.Host.StopAsync(TimeSpan.FromSeconds(20));
            }
            catch (OperationCanceledException)
            {
            }
            worker.Host.Dispose();
            worker.Metrics.Dispose();
        }
        Producer.Dispose();
        RawProducer.Dispose();
        Cluster.Dispose();
        await Database.DisposeAsync();
    }
}
