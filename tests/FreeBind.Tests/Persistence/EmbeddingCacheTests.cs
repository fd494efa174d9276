using System.Diagnostics;
using FreeBind.Persistence.Cache;
using FreeBind.Tests.Services;
using StackExchange.Redis;

namespace FreeBind.Tests.Persistence;

/// <summary>A connected test Redis with a key prefix of its own, and helpers.</summary>
public abstract class RedisTestBase : IAsyncLifetime
{
    protected const int Dim = 16;
    private readonly string _prefix = "test-" + Guid.NewGuid().ToString("N")[..8];
    private ConnectionMultiplexer? _redis;

    private ConnectionMultiplexer Redis => _redis ?? throw new InvalidOperationException("not initialised");

    public async Task InitializeAsync()
    {
        _redis = RedisConnection.Connect(Options());
        // AbortOnConnectFail=false never throws; an unreachable test Redis must still fail loudly.
        var deadline = Stopwatch.StartNew();
        while (!_redis.IsConnected && deadline.Elapsed < TimeSpan.FromSeconds(5))
            await Task.Delay(50);
        if (!_redis.IsConnected)
            throw new InvalidOperationException($"Redis at {ServiceEnvironment.Redis} is unreachable; {ServiceEnvironment.StartHint}");
    }

    public async Task DisposeAsync()
    {
        if (_redis is not null)
            await _redis.DisposeAsync();
    }

    /// <summary>
    /// The longest per-command timeout the options accept. For tests of what a reachable Redis
    /// answers: on a loaded machine a round trip can take longer than the product's 500 ms, and a
    /// command that times out is a miss (or a skipped write) that would pass for a wrong answer.
    /// </summary>
    protected static readonly TimeSpan Patient = TimeSpan.FromSeconds(30);

    private CacheOptions Options(TimeSpan? ttl = null, bool enabled = true, TimeSpan? operationTimeout = null) => new()
    {
        Redis = ServiceEnvironment.Redis,
        KeyPrefix = _prefix,
        Ttl = ttl ?? TimeSpan.FromMinutes(5),
        Enabled = enabled,
        OperationTimeout = operationTimeout ?? new CacheOptions().OperationTimeout,
    };

    protected EmbeddingCache Cache(ListLogger<EmbeddingCache>? logger = null, TimeSpan? ttl = null, bool enabled = true, TimeSpan? operationTimeout = null) =>
        new(Redis, Microsoft.Extensions.Options.Options.Create(Options(ttl, enabled, operationTimeout)), logger ?? new ListLogger<EmbeddingCache>());

    protected static CacheKey Key(string version = "imagebind@sha256:one", string modality = "image", string content = "a") =>
        new(version, modality, TestData.Sha256(content));
}

/// <summary>What a reachable Redis answers; timing is <see cref="EmbeddingCacheOutageTests"/>' subject.</summary>
public sealed class EmbeddingCacheTests : RedisTestBase
{
    private EmbeddingCache PatientCache(ListLogger<EmbeddingCache>? logger = null, TimeSpan? ttl = null, bool enabled = true) =>
        Cache(logger, ttl, enabled, Patient);

    [Fact]
    public async Task A_stored_vector_is_a_hit_and_anything_else_a_miss()
    {
        var cache = PatientCache();
        var vector = TestData.Vector(1, Dim);

        Assert.Null(await cache.TryGetAsync(Key(), Dim));
        await cache.SetAsync(Key(), vector);

        Assert.Equal(vector, await cache.TryGetAsync(Key(), Dim));
        Assert.Null(await cache.TryGetAsync(Key(content: "b"), Dim));
        Assert.Null(await cache.TryGetAsync(Key(modality: "audio"), Dim));
    }

    [Fact]
    public async Task Another_space_versions_key_is_never_returned()
    {
        var cache = PatientCache();
        await cache.SetAsync(Key(version: "imagebind@sha256:one"), TestData.Vector(1, Dim));

        Assert.Null(await cache.TryGetAsync(Key(version: "imagebind@sha256:two"), Dim));
        Assert.Null(await cache.TryGetAsync(Key(version: "imagebind++@sha256:one"), Dim));
        await cache.SetAsync(Key(version: "imagebind@sha256:two"), TestData.Vector(2, Dim));
        Assert.Equal(TestData.Vector(1, Dim), await cache.TryGetAsync(Key(version: "imagebind@sha256:one"), Dim));
        Assert.Equal(TestData.Vector(2, Dim), await cache.TryGetAsync(Key(version: "imagebind@sha256:two"), Dim));
    }

    /// <summary>
    /// No fixed sleep: a loaded machine may take longer than the TTL between two calls. What is
    /// checked is only what the clock allows: the entry is there while less than the TTL has passed
    /// since before the write, is gone once a lookup comes back empty (waited for, up to 30 s), and
    /// that lookup did not come before the TTL.
    /// </summary>
    [Fact]
    public async Task Entries_expire_after_the_ttl()
    {
        var limit = TimeSpan.FromSeconds(2);
        var cache = PatientCache(ttl: limit);
        var sinceBeforeWrite = Stopwatch.StartNew();
        await cache.SetAsync(Key(content: "ttl"), TestData.Vector(1, Dim));

        var ttl = await cache.TimeToLiveAsync(Key(content: "ttl"));
        var hit = await cache.TryGetAsync(Key(content: "ttl"), Dim);
        if (sinceBeforeWrite.Elapsed < limit)
        {
            Assert.NotNull(ttl);
            Assert.InRange(ttl.Value, TimeSpan.FromMilliseconds(1), limit);
            Assert.NotNull(hit);
        }

        float[]? last = hit;
        while (last is not null && sinceBeforeWrite.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100);
            last = await cache.TryGetAsync(Key(content: "ttl"), Dim);
        }
        var goneAt = sinceBeforeWrite.Elapsed;
        Assert.Null(last);
        // Redis counts the TTL from when it ran the write, which is after the stopwatch started.
        Assert.True(goneAt >= limit - TimeSpan.FromMilliseconds(50), $"the entry was gone after {goneAt}, before its TTL of {limit}");
    }

    [Fact]
    public async Task A_value_of_the_wrong_size_is_ignored()
    {
        var logger = new ListLogger<EmbeddingCache>();
        var cache = PatientCache(logger);
        await cache.SetAsync(Key(content: "size"), TestData.Vector(1, Dim));

        Assert.Null(await cache.TryGetAsync(Key(content: "size"), Dim * 2));
        Assert.False(cache.IsDegraded); // the miss is the size check's, not an unanswered command's
        Assert.Equal(1, logger.Count(4032));
    }

    [Fact]
    public async Task A_disabled_cache_never_hits()
    {
        var cache = PatientCache(enabled: false);
        await cache.SetAsync(Key(content: "off"), TestData.Vector(1, Dim));

        Assert.Null(await cache.TryGetAsync(Key(content: "off"), Dim));
        Assert.Null(await PatientCache().TryGetAsync(Key(content: "off"), Dim));
    }
}

/// <summary>Stops and restarts the test Redis: runs alone, after the parallel tests.</summary>
[Collection(ServiceOutageCollection.Name)]
public sealed class EmbeddingCacheOutageTests : RedisTestBase
{
    private const int CacheDownEvent = 4030;
    private const int CacheRecoveredEvent = 4031;
    private static readonly TimeSpan OperationTimeout = new CacheOptions().OperationTimeout;
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(3);

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    // Writes and reads back until Redis answers (a minute at most); null if it never did.
    private static async Task<float[]?> UntilStoredAsync(EmbeddingCache cache, CacheKey key, float[] vector)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            await cache.SetAsync(key, vector);
            var hit = await cache.TryGetAsync(key, Dim);
            if (hit is not null || waited.Elapsed > TimeSpan.FromMinutes(1)) return hit;
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task Redis_outage_degrades_to_misses_logged_once_then_recovers()
    {
        var logger = new ListLogger<EmbeddingCache>();
        var cache = Cache(logger);
        var vector = TestData.Vector(3, Dim);
        // The test before may have restarted Redis: the cache must work before the outage starts.
        // Seeded and read back by a patient cache on the same connection, so a slow answer on a
        // loaded machine is not an outage of the cache under test before the real one.
        var seed = Cache(operationTimeout: Patient);
        Assert.Equal(vector, await UntilStoredAsync(seed, Key(content: "outage"), vector));

        await ServiceEnvironment.RunScriptAsync("stop-redis");
        try
        {
            // Each call is bounded by the operation timeout (500 ms); the slack is for a loaded
            // machine's scheduling, far below what a call waiting on connect retries would take.
            var slowest = TimeSpan.Zero;
            for (var i = 0; i < 20; i++)
            {
                var call = Stopwatch.StartNew();
                Assert.Null(await cache.TryGetAsync(Key(content: "outage"), Dim));
                slowest = Max(slowest, call.Elapsed);
                call.Restart();
                await cache.SetAsync(Key(content: "outage-" + i), vector);
                slowest = Max(slowest, call.Elapsed);
            }
            Assert.True(cache.IsDegraded);
            Assert.Equal(1, logger.Count(CacheDownEvent));
            Assert.True(slowest < OperationTimeout + Slack, $"a call against a stopped Redis took {slowest}");
        }
        finally
        {
            await ServiceEnvironment.RunScriptAsync("start-redis");
        }

        // The restarted Redis is empty (no persistence): the cache works again once it reconnects.
        Assert.Equal(vector, await UntilStoredAsync(cache, Key(content: "after"), vector));
        Assert.False(cache.IsDegraded);
        Assert.Equal(1, logger.Count(CacheDownEvent));
        Assert.Equal(1, logger.Count(CacheRecoveredEvent));
    }

    [Fact]
    public async Task A_hung_redis_times_out_to_a_miss_within_the_operation_timeout()
    {
        var logger = new ListLogger<EmbeddingCache>();
        var cache = Cache(logger);
        var vector = TestData.Vector(4, Dim);
        var seed = Cache(operationTimeout: Patient);
        Assert.Equal(vector, await UntilStoredAsync(seed, Key(content: "hung"), vector));
        var admin = ConfigurationOptions.Parse(ServiceEnvironment.Redis);
        admin.AllowAdmin = true;
        // Kept open until the pause ends: closing it sends a command the pause would hold.
        await using var adminConnection = await ConnectionMultiplexer.ConnectAsync(admin);
        // Paused far longer than the operation timeout plus slack, so waiting the pause out
        // cannot pass for timing out.
        var pause = Stopwatch.StartNew();
        await adminConnection.GetServer(adminConnection.GetEndPoints()[0]).ExecuteAsync("CLIENT", "PAUSE", "10000", "ALL");

        var sw = Stopwatch.StartNew();
        var during = await cache.TryGetAsync(Key(content: "hung"), Dim);
        sw.Stop();

        Assert.Null(during);
        Assert.True(sw.Elapsed < OperationTimeout + Slack, $"a hung Redis held the lookup {sw.Elapsed}");
        Assert.True(pause.Elapsed < TimeSpan.FromSeconds(10), $"the pause ended before the lookup returned ({pause.Elapsed}): the test proved nothing");
        Assert.Equal(1, logger.Count(CacheDownEvent));
        float[]? after = null;
        while (after is null && pause.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(200);
            after = await cache.TryGetAsync(Key(content: "hung"), Dim);
        }
        Assert.Equal(vector, after);
        Assert.Equal(1, logger.Count(CacheRecoveredEvent));
    }
}
