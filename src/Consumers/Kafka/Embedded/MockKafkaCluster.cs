using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace FreeBind.Consumers.Kafka.Embedded;

/// <summary>Kafka protocol request types, for fault injection with <see cref="MockKafkaCluster.PushRequestErrors"/>.</summary>
public enum KafkaApiKey : short
{
    /// <summary>ProduceRequest.</summary>
    Produce = 0,
    /// <summary>FetchRequest.</summary>
    Fetch = 1,
    /// <summary>ListOffsetsRequest.</summary>
    ListOffsets = 2,
    /// <summary>MetadataRequest.</summary>
    Metadata = 3,
    /// <summary>OffsetCommitRequest.</summary>
    OffsetCommit = 8,
    /// <summary>OffsetFetchRequest.</summary>
    OffsetFetch = 9,
    /// <summary>FindCoordinatorRequest.</summary>
    FindCoordinator = 10,
    /// <summary>JoinGroupRequest.</summary>
    JoinGroup = 11,
    /// <summary>HeartbeatRequest.</summary>
    Heartbeat = 12,
    /// <summary>SyncGroupRequest.</summary>
    SyncGroup = 14,
}

/// <summary>
/// An in-process Kafka cluster: librdkafka's mock brokers (real protocol on loopback ports, consumer
/// groups, committed offsets, fault injection), reached by P/Invoke into the very librdkafka that
/// Confluent.Kafka loaded. Serves the tests and <c>freebind demo</c> (Kafka:Embedded=true).
/// </summary>
/// <remarks>
/// Dispose every client of the cluster before the cluster. The mock API is experimental in
/// librdkafka (no ABI promise), which is why only a handful of stable calls are used.
/// </remarks>
public sealed unsafe class MockKafkaCluster : IDisposable
{
    private readonly object _gate = new();
    private nint _handle;   // rd_kafka_t* that owns the mock cluster (bookkeeping only)
    private nint _cluster;  // rd_kafka_mock_cluster_t*

    private MockKafkaCluster(nint handle, nint cluster, int brokers)
    {
        _handle = handle;
        _cluster = cluster;
        Brokers = brokers;
        BootstrapServers = Marshal.PtrToStringUTF8(Native.Bootstraps(cluster))
            ?? throw new InvalidOperationException("mock cluster returned no bootstrap servers");
    }

    /// <summary>The brokers' <c>bootstrap.servers</c> (127.0.0.1 ports chosen by the OS).</summary>
    public string BootstrapServers { get; }

    /// <summary>Number of brokers; their ids are 1…<see cref="Brokers"/>.</summary>
    public int Brokers { get; }

    /// <summary>Starts a mock cluster.</summary>
    /// <param name="brokers">Number of brokers (ids 1…n).</param>
    /// <param name="groupInitialRebalanceDelay">
    /// The broker's <c>group.initial.rebalance.delay.ms</c> (mock default 3 s): how long a new group
    /// waits for more members before its first assignment. Short keeps tests and the demo quick.
    /// </param>
    public static MockKafkaCluster Start(int brokers = 3, TimeSpan? groupInitialRebalanceDelay = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(brokers, 1);
        var conf = Native.ConfNew();
        Native.ConfSet(conf, "client.id", "freebind-mock-cluster");
        Native.ConfSet(conf, "log_level", "3"); // the owner has no bootstrap servers; its warning is noise
        var handle = Native.NewProducer(conf); // takes ownership of conf
        var cluster = Native.ClusterNew(handle, brokers);
        if (cluster == 0)
        {
            Native.Destroy(handle);
            throw new InvalidOperationException("rd_kafka_mock_cluster_new failed");
        }
        var mock = new MockKafkaCluster(handle, cluster, brokers);
        mock.SetGroupInitialRebalanceDelay(groupInitialRebalanceDelay ?? TimeSpan.FromSeconds(1));
        return mock;
    }

    /// <summary>Creates a topic (the mock does not implement the CreateTopics admin request).</summary>
    /// <param name="topic">Topic name.</param>
    /// <param name="partitions">Partition count.</param>
    /// <param name="replicationFactor">Replicas per partition (at most <see cref="Brokers"/>).</param>
    public void CreateTopic(string topic, int partitions, int replicationFactor = 1) =>
        Check(Native.TopicCreate(Cluster, topic, partitions, replicationFactor), $"create topic {topic}");

    /// <summary>Disconnects a broker and refuses new connections (no leader change).</summary>
    /// <param name="brokerId">Broker id, or -1 for all.</param>
    public void SetBrokerDown(int brokerId) => Check(Native.BrokerSetDown(Cluster, brokerId), $"set broker {brokerId} down");

    /// <summary>Lets a broker accept connections again.</summary>
    /// <param name="brokerId">Broker id, or -1 for all.</param>
    public void SetBrokerUp(int brokerId) => Check(Native.BrokerSetUp(Cluster, brokerId), $"set broker {brokerId} up");

    /// <summary>Moves a partition's leadership.</summary>
    /// <param name="topic">Topic.</param>
    /// <param name="partition">Partition.</param>
    /// <param name="brokerId">New leader, or -1 for none.</param>
    public void SetPartitionLeader(string topic, int partition, int brokerId) =>
        Check(Native.PartitionSetLeader(Cluster, topic, partition, brokerId), $"move {topic}[{partition}] to broker {brokerId}");

    /// <summary>Makes the next requests of one type fail, one error each, in order.</summary>
    /// <param name="apiKey">Request type.</param>
    /// <param name="errors">Errors to answer with; <see cref="ErrorCode.Local_Transport"/> drops the connection.</param>
    public void PushRequestErrors(KafkaApiKey apiKey, params ErrorCode[] errors)
    {
        // The _array variant: the variadic rd_kafka_mock_push_request_errors cannot be called portably from .NET.
        var codes = Array.ConvertAll(errors, e => (int)e);
        fixed (int* p = codes)
            Native.PushRequestErrorsArray(Cluster, (short)apiKey, (nuint)codes.Length, p);
    }

    /// <summary>Sets <c>group.initial.rebalance.delay.ms</c> for groups created from now on.</summary>
    /// <param name="delay">The delay.</param>
    public void SetGroupInitialRebalanceDelay(TimeSpan delay) =>
        Native.GroupInitialRebalanceDelayMs(Cluster, checked((int)delay.TotalMilliseconds));

    /// <summary>Stops the brokers and frees the cluster.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_cluster != 0)
                Native.ClusterDestroy(_cluster);
            if (_handle != 0)
                Native.Destroy(_handle);
            _cluster = 0;
            _handle = 0;
        }
    }

    private nint Cluster
    {
        get
        {
            var cluster = _cluster;
            ObjectDisposedException.ThrowIf(cluster == 0, this);
            return cluster;
        }
    }

    private static void Check(int err, string what)
    {
        if (err != 0)
            throw new KafkaException(new Error((ErrorCode)err, $"mock cluster: {what}: {new Error((ErrorCode)err).Reason}"));
    }

    /// <summary>Function pointers into the librdkafka instance Confluent.Kafka uses.</summary>
    private static class Native
    {
        private static readonly nint Library = LoadConfluentsLibrdkafka();

        private static readonly delegate* unmanaged<nint> confNew = (delegate* unmanaged<nint>)Export("rd_kafka_conf_new");
        private static readonly delegate* unmanaged<nint, byte*, byte*, byte*, nuint, int> confSet =
            (delegate* unmanaged<nint, byte*, byte*, byte*, nuint, int>)Export("rd_kafka_conf_set");
        private static readonly delegate* unmanaged<nint, void> confDestroy = (delegate* unmanaged<nint, void>)Export("rd_kafka_conf_destroy");
        private static readonly delegate* unmanaged<int, nint, byte*, nuint, nint> kafkaNew =
            (delegate* unmanaged<int, nint, byte*, nuint, nint>)Export("rd_kafka_new");
        private static readonly delegate* unmanaged<nint, void> kafkaDestroy = (delegate* unmanaged<nint, void>)Export("rd_kafka_destroy");
        private static readonly delegate* unmanaged<nint, int, nint> clusterNew = (delegate* unmanaged<nint, int, nint>)Export("rd_kafka_mock_cluster_new");
        private static readonly delegate* unmanaged<nint, nint> bootstraps = (delegate* unmanaged<nint, nint>)Export("rd_kafka_mock_cluster_bootstraps");
        private static readonly delegate* unmanaged<nint, void> clusterDestroy = (delegate* unmanaged<nint, void>)Export("rd_kafka_mock_cluster_destroy");
        private static readonly delegate* unmanaged<nint, byte*, int, int, int> topicCreate =
            (delegate* unmanaged<nint, byte*, int, int, int>)Export("rd_kafka_mock_topic_create");
        private static readonly delegate* unmanaged<nint, int, int> brokerSetDown = (delegate* unmanaged<nint, int, int>)Export("rd_kafka_mock_broker_set_down");
        private static readonly delegate* unmanaged<nint, int, int> brokerSetUp = (delegate* unmanaged<nint, int, int>)Export("rd_kafka_mock_broker_set_up");
        private static readonly delegate* unmanaged<nint, byte*, int, int, int> partitionSetLeader =
            (delegate* unmanaged<nint, byte*, int, int, int>)Export("rd_kafka_mock_partition_set_leader");
        private static readonly delegate* unmanaged<nint, short, nuint, int*, void> pushRequestErrorsArray =
            (delegate* unmanaged<nint, short, nuint, int*, void>)Export("rd_kafka_mock_push_request_errors_array");
        private static readonly delegate* unmanaged<nint, int, void> groupInitialRebalanceDelayMs =
            (delegate* unmanaged<nint, int, void>)Export("rd_kafka_mock_group_initial_rebalance_delay_ms");

        public static nint ConfNew() => confNew();

        public static void ConfSet(nint conf, string name, string value)
        {
            var err = stackalloc byte[512];
            int res;
            fixed (byte* n = Utf8(name), v = Utf8(value))
                res = confSet(conf, n, v, err, 512);
            if (res != 0)
                throw new InvalidOperationException($"rd_kafka_conf_set({name}): {Marshal.PtrToStringUTF8((nint)err)}");
        }

        public static nint NewProducer(nint conf)
        {
            var err = stackalloc byte[512];
            var rk = kafkaNew(0 /* RD_KAFKA_PRODUCER */, conf, err, 512);
            if (rk == 0)
            {
                confDestroy(conf); // rd_kafka_new keeps the conf only on success
                throw new InvalidOperationException($"rd_kafka_new: {Marshal.PtrToStringUTF8((nint)err)}");
            }
            return rk;
        }

        public static void Destroy(nint rk) => kafkaDestroy(rk);

        public static nint ClusterNew(nint rk, int brokers) => clusterNew(rk, brokers);

        public static nint Bootstraps(nint cluster) => bootstraps(cluster);

        public static void ClusterDestroy(nint cluster) => clusterDestroy(cluster);

        public static int TopicCreate(nint cluster, string topic, int partitions, int replicationFactor)
        {
            fixed (byte* t = Utf8(topic))
                return topicCreate(cluster, t, partitions, replicationFactor);
        }

        public static int BrokerSetDown(nint cluster, int brokerId) => brokerSetDown(cluster, brokerId);

        public static int BrokerSetUp(nint cluster, int brokerId) => brokerSetUp(cluster, brokerId);

        public static int PartitionSetLeader(nint cluster, string topic, int partition, int brokerId)
        {
            fixed (byte* t = Utf8(topic))
                return partitionSetLeader(cluster, t, partition, brokerId);
        }

        public static void PushRequestErrorsArray(nint cluster, short apiKey, nuint count, int* errors) =>
            pushRequestErrorsArray(cluster, apiKey, count, errors);

        public static void GroupInitialRebalanceDelayMs(nint cluster, int ms) => groupInitialRebalanceDelayMs(cluster, ms);

        private static byte[] Utf8(string s)
        {
            var bytes = new byte[System.Text.Encoding.UTF8.GetByteCount(s) + 1]; // zero-terminated
            System.Text.Encoding.UTF8.GetBytes(s, bytes);
            return bytes;
        }

        private static nint Export(string name) =>
            NativeLibrary.TryGetExport(Library, name, out var address)
                ? address
                : throw new EntryPointNotFoundException($"{name} not found in librdkafka (needs a build with the mock cluster)");

        // Confluent.Kafka picks one of several bundled builds at run time (on Debian 12 the
        // centos8 one: the default needs libsasl2.so.3). Loading "librdkafka" ourselves could bind
        // another copy with separate global state, so make Confluent load first, then open the file
        // it mapped into the process.
        private static nint LoadConfluentsLibrdkafka()
        {
            _ = Confluent.Kafka.Library.Version;
            if (File.Exists("/proc/self/maps"))
            {
                foreach (var line in File.ReadLines("/proc/self/maps"))
                {
                    var slash = line.IndexOf('/', StringComparison.Ordinal);
                    if (slash < 0)
                        continue;
                    var path = line[slash..].Trim();
                    var file = Path.GetFileName(path);
                    if (file.Contains("librdkafka", StringComparison.Ordinal) && file.Contains(".so", StringComparison.Ordinal))
                        return NativeLibrary.Load(path);
                }
            }
            return NativeLibrary.Load("librdkafka"); // not Linux: the platform loader returns the loaded module
        }
    }
}
