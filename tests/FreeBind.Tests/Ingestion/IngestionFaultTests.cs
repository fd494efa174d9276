using System.Diagnostics;
using FreeBind.Consumers.Kafka.Embedded;
using FreeBind.Tests.Services;
using Confluent.Kafka;
using Xunit.Abstractions;

namespace FreeBind.Tests.Ingestion;

/// <summary>
/// At-least-once under faults: Postgres and Redis outages, a worker killed mid-batch, broker and
/// partition-leader faults, and a consumer group of three processes losing one. Every scenario
/// ends with every event in the table exactly once.
/// </summary>
[Collection(ServiceOutageCollection.Name)]
public sealed class IngestionFaultTests(ITestOutputHelper output)
{
    private static IEnumerable<(string Key, object Value)> Texts(int from, int count, string prefix = "t") =>
        Enumerable.Range(from, count).Select(i => ($"{prefix}-{i:D5}", IngestionHarness.TextEvent($"{prefix}-{i:D5}", $"{prefix} caption {i}")));

    private static List<string> Ids(int from, int count, string prefix = "t") => [.. Texts(from, count, prefix).Select(t => t.Key)];

    /// <summary>Each produced id published exactly once on the output topic (no redelivery republished it).</summary>
    private static void AssertPublishedOnce(IngestionHarness h, IReadOnlyCollection<string> ids)
    {
        var published = h.ReadTopic(h.OutputTopic, ids.Count, TimeSpan.FromSeconds(30)).Select(m => m.Message.Key).ToList();
        Assert.Equal(ids.Order(StringComparer.Ordinal), published.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Postgres_down_for_10_seconds_mid_stream_loses_nothing()
    {
        await using var h = await IngestionHarness.StartAsync();
        await h.InstallWriteAuditAsync();
        await h.StartWorkerAsync();
        var producing = Task.Run(async () =>
        {
            for (var batch = 0; batch < 10; batch++)
            {
                await h.ProduceAsync(Texts(batch * 40, 40));
                await Task.Delay(1000);
            }
        });
        await h.WaitForRowsAsync(60, TimeSpan.FromMinutes(1));
        await ServiceEnvironment.RunScriptAsync("stop-postgres");
        var stopped = Stopwatch.StartNew();
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(10));
        }
        finally
        {
            await ServiceEnvironment.RunScriptAsync("start-postgres");
        }
        output.WriteLine($"Postgres was down {stopped.Elapsed.TotalSeconds:F1} s");
        await producing;
        await h.WaitForRowsAsync(400, TimeSpan.FromMinutes(2));
        await h.AssertExactlyOnceAsync(Ids(0, 400));
        // The writer waited for Postgres: nothing was consumed twice, so nothing was published twice.
        AssertPublishedOnce(h, Ids(0, 400));
    }

    [Fact]
    public async Task Redis_down_gives_correct_results_and_the_cache_is_used_again_after_restart()
    {
        await using var h = await IngestionHarness.StartAsync();
        await h.InstallWriteAuditAsync();
        var worker = (await h.StartWorkerAsync()).Metrics;
        await h.ProduceAsync(Texts(0, 20, "a"));
        await h.WaitForRowsAsync(20, TimeSpan.FromMinutes(1));

        await ServiceEnvironment.RunScriptAsync("stop-redis");
        try
        {
            // Same texts under new ids: without Redis they are encoded again, and still stored.
            await h.ProduceAsync(Enumerable.Range(0, 20).Select(i => ($"b-{i:D5}", IngestionHarness.TextEvent($"b-{i:D5}", $"a caption {i}"))));
            await h.WaitForRowsAsync(40, TimeSpan.FromMinutes(1));
            Assert.Equal(0, worker.CacheHits);
        }
        finally
        {
            await ServiceEnvironment.RunScriptAsync("start-redis");
        }
        var version = await h.ActiveVersionAsync();
        var store = h.Database.Store();
        for (var i = 0; i < 20; i += 7)
            Assert.Equal(await store.GetEmbeddingAsync(version, $"a-{i:D5}"), await store.GetEmbeddingAsync(version, $"b-{i:D5}"));

        // Redis is back (and empty): the first copy fills it, the second is served from it.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var round = 0;
        while (worker.CacheHits == 0 && DateTime.UtcNow < deadline)
        {
            await h.ProduceAsync(Enumerable.Range(0, 5).Select(i => ($"c{round}-{i}", IngestionHarness.TextEvent($"c{round}-{i}", $"after restart {i}"))));
            await Task.Delay(1500);
            round++;
        }
        output.WriteLine($"cache hits after restart: {worker.CacheHits} (rounds {round})");
        Assert.True(worker.CacheHits > 0, "the cache was not used again after Redis came back");
        await h.AssertExactlyOnceAsync([.. Ids(0, 20, "a"), .. Ids(0, 20, "b"), .. Enumerable.Range(0, round).SelectMany(r => Enumerable.Range(0, 5).Select(i => $"c{r}-{i}"))]);
    }

    [Fact]
    public async Task A_worker_killed_with_work_in_flight_loses_nothing_and_its_redeliveries_are_absorbed()
    {
        await using var h = await IngestionHarness.StartAsync();
        // Slow writes in small batches: Ingestion:MaxInFlight messages stay consumed and not yet
        // durable the whole time, while durable ones follow each other steadily (~20 a second).
        await h.InstallWriteAuditAsync(slowRows: TimeSpan.FromMilliseconds(100));
        var settings = new Dictionary<string, string?>
        {
            ["Kafka:Consumer:auto.commit.interval.ms"] = "3000",
            ["Ingestion:WriteBatch"] = "8",
            // Consumption stays 60–64 messages ahead of durability (~3 s of writes), never draining to the resume mark.
            ["Ingestion:MaxInFlight"] = "64",
            ["Ingestion:ResumeInFlight"] = "60",
        };
        var first = h.StartWorkerProcess("w1", settings);
        await h.ProduceAsync(Texts(0, 300));
        await h.WaitForRowsAsync(20, TimeSpan.FromMinutes(2));
        // Kill halfway between two commits: a worker that stores offsets at consume time has just
        // committed messages that are not durable by the kill (lost after the restart); a correct
        // one has made messages durable since that commit (delivered again after the restart).
        var committed = h.CommittedOffsets();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (h.CommittedOffsets() == committed && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.True(h.CommittedOffsets() > committed, "the worker committed no offsets");
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // half the commit interval: a point in time, not a state to wait for
        first.Kill(entireProcessTree: true); // SIGKILL: no drain, no commit
        await first.WaitForExitAsync();
        var rowsAtKill = await h.RowCountAsync();
        output.WriteLine($"killed after {rowsAtKill} rows, committed offsets {h.CommittedOffsets()}");
        Assert.True(rowsAtKill < 300, "the worker finished before it could be killed with work in flight; slow the writes");

        h.StartWorkerProcess("w2", settings);
        await h.WaitForRowsAsync(300, TimeSpan.FromMinutes(3));
        await h.AssertExactlyOnceAsync(Ids(0, 300));
        var redelivered = await h.RedeliveredAsync();
        output.WriteLine($"{redelivered.Count} messages were delivered again after the restart and absorbed");
        Assert.True(redelivered.Count > 0, "no message was delivered twice: the kill did not hit durable work with uncommitted offsets");
    }

    [Fact]
    public async Task Broker_down_leader_moves_and_request_errors_lose_nothing()
    {
        await using var h = await IngestionHarness.StartAsync(brokers: 3);
        await h.InstallWriteAuditAsync();
        await h.StartWorkerAsync();
        var producing = Task.Run(async () =>
        {
            for (var batch = 0; batch < 10; batch++)
            {
                await h.ProduceAsync(Texts(batch * 30, 30));
                await Task.Delay(600);
            }
        });
        await h.WaitForRowsAsync(40, TimeSpan.FromMinutes(1));
        h.Cluster.SetBrokerDown(2);
        await Task.Delay(TimeSpan.FromSeconds(3));
        h.Cluster.SetBrokerUp(2);
        h.Cluster.SetPartitionLeader(h.Topic, 0, 3);
        h.Cluster.SetPartitionLeader(h.Topic, 1, 1);
        h.Cluster.PushRequestErrors(KafkaApiKey.Fetch, ErrorCode.NotLeaderForPartition, ErrorCode.Local_Transport);
        h.Cluster.PushRequestErrors(KafkaApiKey.OffsetCommit, ErrorCode.RequestTimedOut, ErrorCode.GroupCoordinatorNotAvailable);
        h.Cluster.PushRequestErrors(KafkaApiKey.Produce, ErrorCode.NotEnoughReplicas, ErrorCode.RequestTimedOut);
        await producing;
        await h.WaitForRowsAsync(300, TimeSpan.FromMinutes(2));
        await h.AssertExactlyOnceAsync(Ids(0, 300));
        // Every item is published (a commit that failed under the injected errors may let a
        // rebalance deliver a message again: at least once here, not exactly once).
        Assert.Equal(Ids(0, 300).Order(StringComparer.Ordinal), h.ReadTopic(h.OutputTopic, 300, TimeSpan.FromSeconds(30)).Select(m => m.Message.Key).Distinct().Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Three_workers_share_the_partitions_and_take_over_from_a_stopped_one()
    {
        await using var h = await IngestionHarness.StartAsync();
        await h.InstallWriteAuditAsync();
        var names = new[] { "w1", "w2", "w3" };
        var workers = names.Select(n => h.StartWorkerProcess(n)).ToArray();
        // Every member must own partitions before the stream starts.
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (!names.All(n => Assigned(h, n).Count > 0) && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.True(names.All(n => Assigned(h, n).Count > 0), "not every worker got partitions:\n" + h.Logs());
        var owned = Assigned(h, "w1");
        output.WriteLine("w1 owns partitions " + string.Join(",", owned));

        var producing = Task.Run(async () =>
        {
            for (var batch = 0; batch < 12; batch++)
            {
                await h.ProduceAsync(Texts(batch * 50, 50));
                await Task.Delay(700);
            }
        });
        await h.WaitForRowsAsync(150, TimeSpan.FromMinutes(2));
        var before = names.Skip(1).Sum(n => Assigned(h, n).Count);
        workers[0].Kill(entireProcessTree: true);
        await workers[0].WaitForExitAsync();
        output.WriteLine($"killed w1 after {await h.RowCountAsync()} rows");
        await producing;
        await h.WaitForRowsAsync(600, TimeSpan.FromMinutes(2));
        await h.AssertExactlyOnceAsync(Ids(0, 600));
        // w1's partitions went to the other two.
        var taken = names.Skip(1).SelectMany(n => Assigned(h, n)).ToHashSet();
        Assert.True(owned.All(taken.Contains), $"w1's partitions {string.Join(",", owned)} were not taken over:\n{h.Logs()}");
        Assert.True(names.Skip(1).Sum(n => Assigned(h, n).Count) > before);
    }

    /// <summary>Partitions a worker process logged as assigned to it, in order (cooperative: increments).</summary>
    private static List<int> Assigned(IngestionHarness h, string name) =>
        h.Logs().Split('\n')
            .Where(l => l.StartsWith($"[{name}] ", StringComparison.Ordinal) && l.Contains("Partitions assigned: ", StringComparison.Ordinal))
            .SelectMany(l => l[(l.IndexOf("Partitions assigned: ", StringComparison.Ordinal) + 21)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Select(p => int.Parse(p, System.Globalization.CultureInfo.InvariantCulture)).ToList();
}
