using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace FreeBind.Persistence.Cache;

/// <summary>
/// Identifies a cached vector: space version + modality + content digest. The version is part of the
/// key, so a lookup can only ever find vectors of the version it asks for; a cut-over to a new
/// version is a namespace switch with nothing to flush.
/// </summary>
/// <param name="SpaceVersion"><see cref="Spaces.SpaceVersion.Key"/> (<c>space@digest</c>).</param>
/// <param name="Modality"><c>image</c>, <c>audio</c> or <c>text</c>.</param>
/// <param name="ContentSha256">Lower-case hex SHA-256 of the content bytes.</param>
public readonly record struct CacheKey(string SpaceVersion, string Modality, string ContentSha256)
{
    /// <summary>The key of some content in a stored version.</summary>
    /// <param name="version">The space version.</param>
    /// <param name="modality">The content's modality.</param>
    /// <param name="contentSha256">The content digest.</param>
    public static CacheKey For(SpaceVersion version, string modality, string contentSha256) => new(version.Key, modality, contentSha256);

    internal string ToRedisKey(string prefix) => $"{prefix}:emb:{SpaceVersion}:{Modality}:{ContentSha256}";
}

/// <summary>A cached item in one space version: its fused vector and the atoms it was fused from.</summary>
/// <param name="Vector">The fused vector.</param>
/// <param name="Atoms">The expert embeddings (empty for an entry written without them).</param>
public sealed record CachedEmbedding(float[] Vector, IReadOnlyList<Atom> Atoms);

/// <summary>
/// Hot embeddings in Redis: the fused vector (little-endian float32) followed by the atoms it was
/// fused from, so a hit can store the item with its atoms without running an encoder. Redis is an
/// accelerator only: when it is unreachable every lookup misses and every store is skipped, the
/// outage is logged once, and the cache is used again as soon as the connection returns.
/// </summary>
/// <param name="redis">The process's multiplexer; null when the cache is disabled.</param>
/// <param name="options">Cache options.</param>
/// <param name="logger">Logger.</param>
public sealed class EmbeddingCache(IConnectionMultiplexer? redis, IOptions<CacheOptions> options, ILogger<EmbeddingCache> logger)
{
    private readonly CacheOptions _options = options.Value;
    private int _down;

    /// <summary>True while the last Redis call failed (the cache is bypassed).</summary>
    public bool IsDegraded => Volatile.Read(ref _down) == 1;

    /// <summary>The cached vector, or null on a miss, a disabled cache or an unreachable Redis.</summary>
    /// <param name="key">Version, modality and content digest.</param>
    /// <param name="expectedDimension">Width of the version's vectors; a value of another size is ignored.</param>
    public async ValueTask<float[]?> TryGetAsync(CacheKey key, int expectedDimension) =>
        (await TryGetEntriesAsync([(key, expectedDimension)]))[0]?.Vector;

    /// <summary>
    /// Cached entries for several keys in one round trip (null where missed); all null when the
    /// cache is disabled or Redis is unreachable.
    /// </summary>
    /// <param name="keys">Each key with the width of its version's vectors; a value of another size is ignored.</param>
    public async ValueTask<CachedEmbedding?[]> TryGetEntriesAsync(IReadOnlyList<(CacheKey Key, int Dimension)> keys)
    {
        var result = new CachedEmbedding?[keys.Count];
        if (keys.Count == 0 || !Usable())
            return result;
        var redisKeys = keys.Select(k => (RedisKey)k.Key.ToRedisKey(_options.KeyPrefix)).ToArray();
        RedisValue[] values;
        try
        {
            values = await redis!.GetDatabase().StringGetAsync(redisKeys).WaitAsync(_options.OperationTimeout);
        }
        catch (Exception ex) // see MarkDown
        {
            MarkDown(ex);
            return result;
        }
        MarkUp();
        for (var i = 0; i < keys.Count; i++)
        {
            if (values[i].IsNull)
                continue;
            result[i] = CacheValue.Read((ReadOnlyMemory<byte>)values[i], keys[i].Dimension);
            if (result[i] is null)
                Log.CacheValueMalformed(logger, redisKeys[i].ToString(), ((ReadOnlyMemory<byte>)values[i]).Length, keys[i].Dimension * sizeof(float));
        }
        return result;
    }

    /// <summary>Stores a vector (without atoms) with the configured TTL; does nothing when Redis is unreachable.</summary>
    /// <param name="key">Version, modality and content digest.</param>
    /// <param name="vector">The fused vector.</param>
    public ValueTask SetAsync(CacheKey key, ReadOnlyMemory<float> vector) => SetAsync(key, vector, []);

    /// <summary>Stores a vector and the atoms it was fused from with the configured TTL; does nothing when Redis is unreachable.</summary>
    /// <param name="key">Version, modality and content digest.</param>
    /// <param name="vector">The fused vector.</param>
    /// <param name="atoms">The atoms the vector was fused from.</param>
    public async ValueTask SetAsync(CacheKey key, ReadOnlyMemory<float> vector, IReadOnlyList<Atom> atoms)
    {
        if (!Usable())
            return;
        var bytes = CacheValue.Write(vector.Span, atoms);
        try
        {
            await redis!.GetDatabase().StringSetAsync(key.ToRedisKey(_options.KeyPrefix), bytes, _options.Ttl).WaitAsync(_options.OperationTimeout);
        }
        catch (Exception ex) // see MarkDown
        {
            MarkDown(ex);
            return;
        }
        MarkUp();
    }

    /// <summary>Remaining lifetime of a cached vector, or null when absent or Redis is unreachable (diagnostics, tests).</summary>
    /// <param name="key">Version, modality and content digest.</param>
    public async ValueTask<TimeSpan?> TimeToLiveAsync(CacheKey key)
    {
        if (!Usable())
            return null;
        try
        {
            return await redis!.GetDatabase().KeyTimeToLiveAsync(key.ToRedisKey(_options.KeyPrefix)).WaitAsync(_options.OperationTimeout);
        }
        catch (Exception ex) // see MarkDown
        {
            MarkDown(ex);
            return null;
        }
    }

    // With no live connection a command would only fail after its timeout; skip it at once.
    private bool Usable()
    {
        if (!_options.Enabled || redis is null)
            return false;
        if (redis.IsConnected)
            return true;
        MarkDown(null);
        return false;
    }

    // Each try block holds one client-library call and nothing else, so whatever it throws means
    // "no cache for this call": connection failures and server errors (RedisException), timeouts
    // (the library's and our WaitAsync bound, which holds even when a paused server keeps the
    // library waiting), cancellations and, seen in tests, InvalidOperationException from a pipe torn
    // down mid-read. Logged once per outage, with the first failure (type and message, no stack trace).
    private void MarkDown(Exception? ex)
    {
        if (Interlocked.Exchange(ref _down, 1) == 0)
            Log.CacheDown(logger, ex is null ? "not connected" : $"{ex.GetType().Name}: {ex.Message}"); // one line: an outage is not a bug
    }

    private void MarkUp()
    {
        if (Interlocked.Exchange(ref _down, 0) == 1)
            Log.CacheRecovered(logger);
    }
}
