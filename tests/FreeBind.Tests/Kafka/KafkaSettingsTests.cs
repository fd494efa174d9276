using Confluent.Kafka;
using System.Collections.Concurrent;
using FreeBind.Consumers.Ingestion;
using FreeBind.Consumers.Kafka;
using FreeBind.Consumers.Pipeline.Content;
using FreeBind.Tests.Ingestion;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace FreeBind.Tests.Kafka;

/// <summary>
/// librdkafka settings pass through from configuration (Kafka:Client/Consumer/Producer), reach the
/// client for real (its own errors prove it), cannot weaken the worker's guarantees, and secrets
/// come from the environment only and are never logged.
/// </summary>
public sealed class KafkaSettingsTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Secret = "hunter2-do-not-log-me";

    private static KafkaClients Clients(KafkaOptions options) =>
        new(Options.Create(options), Options.Create(new ContentOptions()), NullLogger<KafkaClients>.Instance);

    [Fact]
    public void Settings_pass_through_by_librdkafka_name_or_Confluent_property_name_and_the_narrower_section_wins()
    {
        var options = new KafkaOptions
        {
            Client = new(StringComparer.OrdinalIgnoreCase) { ["security.protocol"] = "sasl_ssl", ["SaslMechanism"] = "ScramSha512", ["client.id"] = "both" },
            Consumer = new(StringComparer.OrdinalIgnoreCase) { ["SessionTimeoutMs"] = "7000", ["client.id"] = "consumer" },
            Producer = new(StringComparer.OrdinalIgnoreCase) { ["linger.ms"] = "50" },
        };
        using var clients = Clients(options);
        var consumer = clients.ConsumerConfig();
        var producer = clients.ProducerConfig();

        Assert.Equal("sasl_ssl", consumer.Get("security.protocol"));
        Assert.Equal("SCRAM-SHA-512", consumer.Get("sasl.mechanism"));
        Assert.Equal("SCRAM-SHA-512", producer.Get("sasl.mechanism"));
        Assert.Equal("7000", consumer.Get("session.timeout.ms"));
        Assert.Equal("consumer", consumer.Get("client.id"));
        Assert.Equal("both", producer.Get("client.id"));
        Assert.Equal("50", producer.Get("linger.ms"));
        // The worker's own guarantees stay: offsets stored by hand, idempotent producer.
        Assert.Equal("false", consumer.Get("enable.auto.offset.store"), ignoreCase: true);
        Assert.Equal("true", producer.Get("enable.idempotence"), ignoreCase: true);
    }

    [Theory]
    [InlineData(512 * 1024)]
    [InlineData(8 * 1024 * 1024)]
    [InlineData(256 * 1024 * 1024)] // the largest Content:MaxInlineBytes allows: events of ~358 MB, above librdkafka's 100 MB receive default
    public void The_consumer_can_fetch_and_the_producer_can_copy_the_largest_event_the_content_caps_accept(int maxInlineBytes)
    {
        var content = new ContentOptions { MaxInlineBytes = maxInlineBytes, MaxMetadataBytes = 16 * 1024 * 1024 };
        using var clients = new KafkaClients(Options.Create(new KafkaOptions { BootstrapServers = "127.0.0.1:1" }), Options.Create(content), NullLogger<KafkaClients>.Instance);
        var consumer = clients.ConsumerConfig();
        var producer = clients.ProducerConfig();
        output.WriteLine($"largest event {content.MaxEventBytes}: fetch.max.bytes {consumer.FetchMaxBytes}, receive.message.max.bytes {consumer.ReceiveMessageMaxBytes}, producer message.max.bytes {producer.MessageMaxBytes}");

        Assert.True(consumer.FetchMaxBytes >= content.MaxEventBytes);
        Assert.True(consumer.ReceiveMessageMaxBytes >= consumer.FetchMaxBytes + 512L);
        Assert.True(consumer.ReceiveMessageMaxBytes >= 100_000_000); // never below librdkafka's own default
        Assert.True(producer.MessageMaxBytes >= content.MaxEventBytes);
        // librdkafka accepts both as they are (it checks the sizes against each other when a client is built).
        using (new ConsumerBuilder<Confluent.Kafka.Ignore, Confluent.Kafka.Ignore>(consumer).Build())
        using (new ProducerBuilder<byte[], byte[]>(producer).Build())
        {
        }
    }

    [Fact]
    public void Fetch_sizes_set_too_small_for_the_content_caps_are_refused_in_one_sentence()
    {
        var options = new KafkaOptions { Consumer = new(StringComparer.OrdinalIgnoreCase) { ["fetch.max.bytes"] = "60000000" } };
        var content = new ContentOptions { MaxInlineBytes = 64 * 1024 * 1024 };
        using var clients = new KafkaClients(Options.Create(options), Options.Create(content), NullLogger<KafkaClients>.Instance);
        var e = Assert.Throws<ArgumentException>(() => clients.ConsumerConfig());
        Assert.StartsWith("the Kafka consumer's fetch sizes (fetch.max.bytes 60000000, receive.message.max.bytes 100000000) cannot carry the largest event", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("enable.auto.offset.store", "true")]
    [InlineData("EnableAutoCommit", "false")]
    [InlineData("group.id", "another")]
    public void Settings_the_guarantees_depend_on_are_refused(string key, string value)
    {
        using var clients = Clients(new KafkaOptions { Consumer = new(StringComparer.OrdinalIgnoreCase) { [key] = value } });
        var e = Assert.Throws<ArgumentException>(() => clients.ConsumerConfig());
        Assert.Contains("managed by the worker", e.Message);
    }

    [Fact]
    public void A_name_that_is_no_setting_is_refused_by_name()
    {
        using var clients = Clients(new KafkaOptions { Client = new(StringComparer.OrdinalIgnoreCase) { ["SaslPasword"] = "x" } });
        var e = Assert.Throws<ArgumentException>(() => clients.ProducerConfig());
        Assert.Contains("Kafka:Client:SaslPasword is not a Kafka client setting", e.Message);
    }

    [Fact]
    public void A_secret_in_a_settings_file_is_refused_and_the_same_secret_from_the_environment_is_taken()
    {
        var dir = Directory.CreateTempSubdirectory("freebind-settings-");
        try
        {
            var file = Path.Combine(dir.FullName, "appsettings.json");
            File.WriteAllText(file, "{\"Kafka\": {\"Client\": {\"sasl.username\": \"svc\", \"sasl.password\": \"" + Secret + "\"}}}");
            var fromFile = new ConfigurationBuilder().AddJsonFile(file).Build();
            var refused = new KafkaSettings.SecretsFromEnvironment(fromFile).Validate(null, new KafkaOptions());
            Assert.True(refused.Failed);
            Assert.Contains("Kafka:Client:sasl.password is a secret and must come from the environment (Kafka__Client__sasl.password)", refused.FailureMessage);
            Assert.DoesNotContain(Secret, refused.FailureMessage);

            Environment.SetEnvironmentVariable("FREEBIND_TEST_Kafka__Client__sasl.password", Secret);
            var fromEnvironment = new ConfigurationBuilder().AddJsonFile(file)
                .AddEnvironmentVariables("FREEBIND_TEST_").Build();
            Assert.True(new KafkaSettings.SecretsFromEnvironment(fromEnvironment).Validate(null, new KafkaOptions()).Succeeded);
        }
        finally
        {
            Environment.SetEnvironmentVariable("FREEBIND_TEST_Kafka__Client__sasl.password", null);
            dir.Delete(recursive: true);
        }
    }

    private sealed class CapturingProvider : ILoggerProvider
    {
        public ConcurrentQueue<string> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, Lines);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
        }
    }

    [Fact]
    public async Task Tls_settings_reach_the_client_and_its_refusal_stops_the_worker_with_one_clear_reason()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var logs = new CapturingProvider();
        var worker = await h.StartWorkerAsync(
            overrides: new Dictionary<string, string?>
            {
                ["Kafka:Client:security.protocol"] = "ssl",
                ["Kafka:Client:ssl.ca.location"] = "/nonexistent/freebind-ca.pem",
                ["Kafka:Client:ssl.key.password"] = Secret,
            },
            configure: b => b.Logging.AddProvider(logs));

        var fault = await WaitForFaultAsync(worker);
        Assert.Contains("ssl.ca.location", fault.Message);
        Assert.DoesNotContain(logs.Lines, l => l.Contains(Secret, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Sasl_credentials_reach_the_client_which_reports_the_failed_login_without_the_password()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var logs = new CapturingProvider();
        // The embedded brokers speak plaintext Kafka only: a client that really tries SASL/SCRAM with
        // these credentials fails its handshake; one that dropped the settings would connect.
        var worker = await h.StartWorkerAsync(
            overrides: new Dictionary<string, string?>
            {
                ["Kafka:Client:SecurityProtocol"] = "SaslPlaintext",
                ["Kafka:Client:SaslMechanism"] = "ScramSha512",
                ["Kafka:Client:SaslUsername"] = "freebind",
                ["Kafka:Client:SaslPassword"] = Secret,
            },
            configure: b => b.Logging.AddProvider(logs));
        await h.ProduceAsync([("x", IngestionHarness.TextEvent("x", "never consumed"))]);

        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!logs.Lines.Any(l => l.Contains("SASL", StringComparison.OrdinalIgnoreCase) && l.StartsWith("Error", StringComparison.Ordinal) || l.StartsWith("Warning", StringComparison.Ordinal) && l.Contains("SASL", StringComparison.OrdinalIgnoreCase))
               && DateTime.UtcNow < deadline)
            await Task.Delay(100);
        var sasl = logs.Lines.Where(l => l.Contains("SASL", StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.True(sasl.Count > 0, "no SASL error from the client:\n" + string.Join("\n", logs.Lines.TakeLast(30)));
        output.WriteLine(sasl[0]);
        Assert.Equal(0, worker.Metrics.Completed);
        // The refusal is not waited out like an outage: the worker stops, saying why in one line.
        var fault = await WaitForFaultAsync(worker);
        Assert.Contains("SASL", FreeBind.Consumers.Hosting.StopReason.Of(fault));
        Assert.DoesNotContain(logs.Lines, l => l.Contains(Secret, StringComparison.Ordinal));
    }

    private static async Task<Exception> WaitForFaultAsync(RunningWorker worker)
    {
        var ingestion = worker.Services.GetRequiredService<IngestionWorker>();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (ingestion.Fault is null && DateTime.UtcNow < deadline) await Task.Delay(50);
        return ingestion.Fault ?? throw new TimeoutException("the worker did not stop");
    }
}
