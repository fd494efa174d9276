using System.Collections.Concurrent;
using Confluent.Kafka;
using FreeBind.Consumers.Kafka.Embedded;

namespace FreeBind.Tests.Kafka;

/// <summary>The in-process mock cluster: consumer groups, committed offsets and fault injection.</summary>
public sealed class MockKafkaClusterTests
{
    private const int Partitions = 4;

    private static string Unique(string name) => name + "-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task A_restarted_consumer_resumes_from_the_committed_offsets()
    {
        using var cluster = MockKafkaCluster.Start(brokers: 3);
        var topic = Unique("media.events");
        var group = Unique("workers");
        cluster.CreateTopic(topic, Partitions);
        using (var producer = KafkaTestClients.Producer(cluster.BootstrapServers))
            await KafkaTestClients.ProduceAsync(producer, topic, 0, 300);

        // First run processes 120 messages, then "crashes" holding a 121st it never stored.
        var first = await KafkaTestClients.ConsumeAsync(cluster.BootstrapServers, group, topic,
            p => p.Count >= 120, TimeSpan.FromSeconds(30), unstoredLast: 120);
        var second = await KafkaTestClients.ConsumeAsync(cluster.BootstrapServers, group, topic,
            p => p.Count >= 300 - first.Count, TimeSpan.FromSeconds(30));

        Assert.Equal(120, first.Count);
        Assert.Empty(first.Intersect(second)); // nothing stored was redelivered…
        Assert.Equal(Expected(300), first.Concat(second).Order()); // …and nothing unstored was lost
    }

    [Fact]
    public async Task Broker_down_leader_moves_and_request_errors_lose_nothing()
    {
        using var cluster = MockKafkaCluster.Start(brokers: 3);
        var topic = Unique("media.events");
        var group = Unique("workers");
        cluster.CreateTopic(topic, Partitions, replicationFactor: 3);
        const int total = 600;
        var seen = new ConcurrentBag<string>();

        var consuming = KafkaTestClients.ConsumeAsync(cluster.BootstrapServers, group, topic,
            _ => seen.Distinct().Count() >= total, TimeSpan.FromSeconds(120), seen, drainToEnd: Partitions);
        using var producer = KafkaTestClients.Producer(cluster.BootstrapServers);
        var producing = KafkaTestClients.ProduceAsync(producer, topic, 0, total, pace: TimeSpan.FromMilliseconds(40));

        await WaitUntil(() => seen.Count >= 50, TimeSpan.FromSeconds(20));
        cluster.SetBrokerDown(2);
        await Task.Delay(TimeSpan.FromSeconds(3));
        cluster.SetBrokerUp(2);

        cluster.SetPartitionLeader(topic, 0, 3);
        cluster.SetPartitionLeader(topic, 1, 1);
        cluster.PushRequestErrors(KafkaApiKey.Produce, ErrorCode.NotEnoughReplicas, ErrorCode.RequestTimedOut, ErrorCode.Local_Transport);
        cluster.PushRequestErrors(KafkaApiKey.Fetch, ErrorCode.NotLeaderForPartition, ErrorCode.Local_Transport);
        cluster.PushRequestErrors(KafkaApiKey.OffsetCommit, ErrorCode.RequestTimedOut, ErrorCode.GroupCoordinatorNotAvailable);
        cluster.PushRequestErrors(KafkaApiKey.Heartbeat, ErrorCode.NotCoordinatorForGroup);

        await producing;
        var processed = await consuming;

        Assert.Equal(Expected(total), seen.Distinct().Order());
        Assert.True(processed.Count >= total);

        // The final commit went through despite the faults: a new member finds nothing left to do.
        var leftover = await KafkaTestClients.ConsumeAsync(cluster.BootstrapServers, group, topic, _ => false, TimeSpan.FromSeconds(5));
        Assert.Empty(leftover);
    }

    [Fact]
    public void Faults_on_unknown_things_are_reported()
    {
        using var cluster = MockKafkaCluster.Start(brokers: 1);

        Assert.Throws<KafkaException>(() => cluster.SetBrokerDown(42));
        Assert.StartsWith("127.0.0.1:", cluster.BootstrapServers, StringComparison.Ordinal);
        cluster.Dispose();
        Assert.Throws<ObjectDisposedException>(() => cluster.CreateTopic("t", 1));
    }

    private static IEnumerable<string> Expected(int count) => Enumerable.Range(0, count).Select(i => $"m{i:D5}").Order();

    private static async Task WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("condition not met in " + timeout);
            await Task.Delay(50);
        }
    }
}
