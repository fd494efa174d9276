using System.Diagnostics;
using Confluent.Kafka;
using FreeBind.Consumers.Ingestion;
using Microsoft.Extensions.DependencyInjection;

namespace FreeBind.Benchmarks.Ingestion;

/// <summary>
/// Per-item latency of the worker's item path (<see cref="ItemProcessor.ProcessAsync"/>: parse,
/// digest, Redis lookup, then on a miss preprocess → encoders → Redis store, then tags), one item at
/// a time with the worker's settings: a miss (new content) and, right after, a hit (the same
/// content under another id). Misses and hits alternate so load from other processes hits both alike.
/// </summary>
internal static class CacheLatency
{
    public static async Task<(double[] MissMs, double[] HitMs)> RunAsync(BenchContext ctx, int items, int warmup, IReadOnlyDictionary<string, string?> overrides)
    {
        await using var db = await BenchDatabase.CreateAsync(ctx.Postgres, migrate: false);
        var topics = ctx.NewTopics();
        var settings = ctx.Settings(db.ConnectionString, topics);
        foreach (var (k, v) in overrides) settings[k] = v;
        using var host = BenchHost.Build(settings, runWorker: false, new WriteStats());
        await host.StartAsync();
        var space = await host.Services.GetRequiredService<SpaceBootstrap>().GetAsync(CancellationToken.None);
        var processor = host.Services.GetRequiredService<ItemProcessor>();

        // Contents of their own (offset far past the throughput cases'), so a "miss" is never served by Redis.
        var texts = ctx.Texts(1_000_000, warmup + items);
        var miss = new List<double>();
        var hit = new List<double>();
        for (var i = 0; i < texts.Count; i++)
        {
            var m = await TimeAsync(processor, space, $"c-{i:D6}", texts[i], i, expectHit: false);
            var h = await TimeAsync(processor, space, $"c-{i:D6}-again", texts[i], i, expectHit: true);
            if (i < warmup) continue;
            miss.Add(m);
            hit.Add(h);
        }
        await host.StopAsync();
        return ([.. miss], [.. hit]);
    }

    private static async Task<double> TimeAsync(ItemProcessor processor, ActiveSpace space, string id, string text, int offset, bool expectHit)
    {
        var message = new ConsumeResult<string?, byte[]>
        {
            TopicPartitionOffset = new TopicPartitionOffset("bench.cache", 0, offset),
            Message = new Message<string?, byte[]> { Key = id, Value = System.Text.Encoding.UTF8.GetBytes(BenchContext.TextEvent(id, text)) },
        };
        var t0 = Stopwatch.GetTimestamp();
        var outcome = await processor.ProcessAsync(space, message, CancellationToken.None);
        var ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        if (outcome is not Outcome.Upserted u) throw new InvalidOperationException($"cache latency: {id} gave {outcome.GetType().Name}");
        if (u.CacheHit != expectHit) throw new InvalidOperationException($"cache latency: {id} was a {(u.CacheHit ? "hit" : "miss")}, expected the opposite (is Redis up?)");
        return ms;
    }
}
