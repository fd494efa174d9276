using System.Diagnostics;
using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Pipeline;
using FreeBind.Consumers.Pipeline.Content;
using FreeBind.Consumers.Spaces;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace FreeBind.Benchmarks.Ingestion;

/// <summary>
/// Per-item latency of the worker's item path (<see cref="MediaEventParser.Parse"/>, then
/// <see cref="ItemPipeline.ProcessAsync"/>: digest, Redis lookup, then on a miss preprocess →
/// encoders → Redis store, then tags), one item at
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
        var space = await host.Services.GetRequiredService<WriteTargets>().StartAsync(CancellationToken.None);
        var processor = host.Services.GetRequiredService<ItemPipeline>();
        var limits = host.Services.GetRequiredService<IOptions<ContentOptions>>().Value.Limits;

        // Contents of their own (offset far past the throughput cases'), so a "miss" is never served by Redis.
        var texts = ctx.Texts(1_000_000, warmup + items);
        var miss = new List<double>();
        var hit = new List<double>();
        for (var i = 0; i < texts.Count; i++)
        {
            var m = await TimeAsync(processor, space, limits, $"c-{i:D6}", texts[i], expectHit: false);
            var h = await TimeAsync(processor, space, limits, $"c-{i:D6}-again", texts[i], expectHit: true);
            if (i < warmup) continue;
            miss.Add(m);
            hit.Add(h);
        }
        await host.StopAsync();
        return ([.. miss], [.. hit]);
    }

    private static async Task<double> TimeAsync(ItemPipeline pipeline, TargetSet targets, EventLimits limits, string id, string text, bool expectHit)
    {
        var value = System.Text.Encoding.UTF8.GetBytes(BenchContext.TextEvent(id, text));
        var t0 = Stopwatch.GetTimestamp();
        var evt = MediaEventParser.Parse(value, id, limits);
        var result = await pipeline.ProcessAsync(ItemRequest.From(evt), targets, CancellationToken.None);
        var ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        if (result is not ItemResult.Embedded e) throw new InvalidOperationException($"cache latency: {id} gave {result}");
        if (e.CacheHit != expectHit) throw new InvalidOperationException($"cache latency: {id} was a {(e.CacheHit ? "hit" : "miss")}, expected the opposite (is Redis up?)");
        return ms;
    }
}
