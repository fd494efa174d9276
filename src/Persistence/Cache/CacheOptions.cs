using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace FreeBind.Persistence.Cache;

/// <summary>Redis embedding cache settings, bound from the <c>Cache</c> section.</summary>
public sealed class CacheOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Cache";

    /// <summary>When false the cache is a no-op (every lookup misses).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>StackExchange.Redis configuration string, e.g. <c>127.0.0.1:6379</c>; when empty, <c>$FREEBIND_REDIS</c>.</summary>
    public string Redis { get; set; } = "";

    /// <summary>Lifetime of a cached vector. Memory limits are Redis's own (maxmemory + LRU policy).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "365.00:00:00")]
    public TimeSpan Ttl { get; set; } = TimeSpan.FromDays(1);

    /// <summary>Prefix of every key, so several deployments can share one Redis.</summary>
    [Required, RegularExpression("^[A-Za-z0-9_.-]{1,64}$")]
    public string KeyPrefix { get; set; } = "freebind";

    /// <summary>Per-command timeout; a slow or absent Redis must never slow the pipeline much.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:00:30")]
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromMilliseconds(500);
}

/// <summary>Validates <see cref="CacheOptions"/> at start (source-generated).</summary>
[OptionsValidator]
public sealed partial class CacheOptionsValidator : IValidateOptions<CacheOptions>;
