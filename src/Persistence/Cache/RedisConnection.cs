using StackExchange.Redis;

namespace FreeBind.Persistence.Cache;

/// <summary>Builds the one Redis multiplexer of the process, tuned so an outage never blocks the pipeline.</summary>
public static class RedisConnection
{
    /// <summary>
    /// Connects without failing when Redis is down: the multiplexer keeps reconnecting in the
    /// background, and commands issued while disconnected fail at once instead of queueing.
    /// </summary>
    /// <param name="options">Cache options (configuration string and timeouts).</param>
    public static ConnectionMultiplexer Connect(CacheOptions options)
    {
        var config = ConfigurationOptions.Parse(options.Redis);
        config.AbortOnConnectFail = false;
        config.BacklogPolicy = BacklogPolicy.FailFast;
        config.ConnectTimeout = (int)Math.Max(options.OperationTimeout.TotalMilliseconds * 2, 1000);
        config.SyncTimeout = (int)options.OperationTimeout.TotalMilliseconds;
        config.AsyncTimeout = (int)options.OperationTimeout.TotalMilliseconds;
        config.ReconnectRetryPolicy = new ExponentialRetry(250, 2000);
        config.ClientName = "freebind";
        return ConnectionMultiplexer.Connect(config);
    }
}
