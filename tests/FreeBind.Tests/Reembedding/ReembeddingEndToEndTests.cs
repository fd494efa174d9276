using FreeBind.Consumers.Cli;
using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Reembedding;
using FreeBind.Encoding;
using FreeBind.Encoding.Experts;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Sagas;
using FreeBind.Persistence.Spaces;
using FreeBind.Tests.Fusion;
using FreeBind.Tests.Ingestion;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FreeBind.Tests.Reembedding;

/// <summary>
/// A whole run on the real services: items ingested through Kafka (mock cluster) into the active
/// version, a new version published, the saga (RabbitMQ, Postgres store) and its workers (stand-in
/// models) re-embed the archive, verify it and cut over.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class ReembeddingEndToEndTests(EngineFixture engine, RabbitMqVirtualHost broker) : IClassFixture<RabbitMqVirtualHost>
{
    [Fact]
    public async Task A_factor_change_is_a_pure_re_fusion_verified_and_cut_over_with_every_vector_equal_to_a_from_scratch_fusion()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind++");
        var ingestion = await h.StartWorkerAsync();
        var ids = Enumerable.Range(0, 40).Select(i => $"item-{i:D3}").ToList();
        await h.ProduceAsync(ids.Select(id => (id, IngestionHarness.TextEvent(id, $"caption of {id}"))));
        await ingestion.Metrics.WaitForCompletedAsync(ids.Count, TimeSpan.FromMinutes(2));
        var v1 = await h.ActiveVersionAsync();

        // Publish: the new version (other factors, same models) is registered in state building.
        var space2 = EngineFixture.Load("imagebind++", FactorSelection.Parse("at-expertise", []));
        var v2 = await h.Database.Catalog().EnsureVersionAsync(space2.Name, space2.Version, space2.Dimension, space2.Manifest.ToCanonicalJson());

        var settings = h.Settings();
        settings["Messaging:Transport"] = "RabbitMq";
        settings["Messaging:RabbitMq"] = broker.Uri;
        settings["Reembedding:BatchSize"] = "7";
        settings["Reembedding:VerifySampleSize"] = "10";
        settings["Reembedding:WatchdogInterval"] = "00:00:05";
        using var host = CliHost.Build(builder =>
        {
            builder.Configuration.AddInMemoryCollection(settings);
            builder.AddItemPipeline();
            builder.AddReembedding(ReembeddingRoles.SagaHost | ReembeddingRoles.Worker);
        });
        await host.StartAsync();
        var encoders = host.Services.GetRequiredService<ExpertEncoders>();

        var id = RunIds.For(space2.Name, space2.Version);
        await host.Services.GetRequiredService<IBus>().Publish(new StartReembedding(id, space2.Name, space2.Version, AutoCutover: false, "test"));
        var runs = host.Services.GetRequiredService<SagaStore<ReembeddingRun>>();
        var ready = await WaitForAsync(runs, id, "Ready");
        var encodedAfterBackfill = Encoded(encoders, space2);

        Assert.Equal(ids.Count, ready.Items);
        Assert.Equal(ids.Count, ready.Refuse); // every atom's model is unchanged: nothing to re-encode
        Assert.Empty(ready.ReencodeByExpert);
        Assert.Equal(ids.Count, ready.Done);
        Assert.Empty(ready.FailedByReason);
        Assert.Equal(v1.Digest, ready.PreviousDigest);
        Assert.Contains(ready.Changes, c => c.StartsWith("factor ", StringComparison.Ordinal));
        Assert.Contains(ready.Findings, f => f.StartsWith("coverage: 40 rows", StringComparison.Ordinal));
        Assert.Equal(SpaceVersionState.Ready, (await h.Database.Catalog().GetAsync(v2.Id))!.State);

        var store = h.Database.Store();
        Assert.Equal(ids.Count, await store.CountAsync(v2));
        foreach (var item in ids)
        {
            var atoms = (await store.GetAtomsAsync(item)).ToDictionary(a => a.Expert, a => a.Vector.ToArray());
            var expected = await engine.Fusion.FuseAsync(space2, Modality.Text, atoms);
            Assert.True(Jsonl.MaxAbsDiff(expected, (await store.GetEmbeddingAsync(v2, item))!) <= 1e-5f, item);
        }

        await host.Services.GetRequiredService<IBus>().Publish(new CutOverReembedding(id));
        var active = await WaitForAsync(runs, id, "Active");
        Assert.Null(active.ExclusiveKey);
        Assert.Equal(v2.Id, (await h.ActiveVersionAsync()).Id);
        // The backfill ran no encoder (the plan said: no re-encode); the only encoder calls are the
        // verify gate's end-to-end recompute of its sample, one per expert and sampled item.
        var report = (await host.Services.GetRequiredService<global::FreeBind.Persistence.Reembedding.VerificationStore>().GetAsync(id))!;
        Assert.Equal(10, report.Sample!.Items);
        Assert.Equal(0, report.Sample.Mismatches);
        Assert.True(report.Recall.Passed);
        Assert.Equal(report.Sample.Items * space2.Plans[Modality.Text].Experts.Count, encodedAfterBackfill);
        await host.StopAsync();
    }

    private static long Encoded(ExpertEncoders encoders, SpaceDefinition space) =>
        space.Plans[Modality.Text].Experts.Sum(e => encoders.Model(space, e, Modality.Text).Batcher.Counters.Items);

    private static async Task<ReembeddingRun> WaitForAsync(SagaStore<ReembeddingRun> runs, Guid id, string state)
    {
        var deadline = DateTime.UtcNow.AddMinutes(3);
        ReembeddingRun? run = null;
        while (DateTime.UtcNow < deadline)
        {
            run = await runs.LoadAsync(id);
            if (run?.CurrentState == state) return run;
            if (run?.CurrentState is "Failed" or "Failing") break;
            await Task.Delay(100);
        }
        throw new Xunit.Sdk.XunitException($"run {id} did not reach {state}; it is {run?.CurrentState ?? "missing"}: {run?.Reason} (done {run?.Done}, findings: {string.Join("; ", run?.Findings ?? [])})");
    }
}
