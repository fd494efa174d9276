using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Reembedding;
using FreeBind.Encoding;
using FreeBind.Encoding.Spaces;
using FreeBind.Tests.Ingestion;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using static FreeBind.Tests.Reembedding.ReembeddingScenario;

namespace FreeBind.Tests.Reembedding;

/// <summary>
/// The cheapest path per item on the real services (Kafka mock, Postgres, RabbitMQ, stand-in models):
/// a run that replaces one expert's model re-encodes only that expert, for the modalities it serves;
/// a mixed run (other factors and another expert replaced) re-fuses, re-encodes and lists what cannot
/// be had again; a rollback by the saga; a re-fusion on a machine with the projector files only.
/// Each ends with every item's vector equal to a from-scratch computation, and the encoder calls the
/// workers made equal, per model file, to what the plan announced.
/// </summary>
[Collection(RabbitMqCollection.Name)]
public sealed class ReembeddingPathTests(EngineFixture engine, RabbitMqVirtualHost broker) : IClassFixture<RabbitMqVirtualHost>, IClassFixture<EngineFixture>
{
    [Fact]
    public async Task A_replaced_expert_is_re_encoded_alone_a_mixed_run_re_fuses_re_encodes_and_lists_the_rest_and_a_re_fusion_needs_no_encoder_file_each_exact_and_as_planned()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind++");
        // Inline data is not kept (cap below the tone's size): such an item cannot be re-encoded.
        var ingestion = await h.StartWorkerAsync(overrides: new Dictionary<string, string?> { ["Content:MaxStoredInlineBytes"] = "1000" });
        var texts = Enumerable.Range(0, 8).Select(i => Text($"t-{i:D2}", $"a caption of item {i}")).ToList();
        var images = new[] { File("i-bbq", Modality.Image, "BBQ.jpeg"), File("i-train", Modality.Image, "train.jpeg") };
        var audios = new[] { File("a-bbq", Modality.Audio, "BBQ.wav"), File("a-toilet", Modality.Audio, "toilet.wav") };
        var inlineTone = Inline("a-tone", Modality.Audio, ToneWav(1.0, 440));
        var items = texts.Concat(images).Concat(audios).Append(inlineTone).ToList();
        await h.ProduceAsync(items.Select(i => (i.Id, i.Event)));
        await ingestion.Metrics.WaitForCompletedAsync(items.Count, TimeSpan.FromMinutes(2));
        await h.StopWorkerAsync(ingestion);
        var v1 = await h.ActiveVersionAsync();

        // The sample recompute is off: the test computes every item from scratch itself, and the
        // workers' encoder calls are then exactly the backfill's.
        using var host = await StartHostAsync(Settings(h, broker, batchSize: 4, sampleSize: 0), ReembeddingRoles.SagaHost | ReembeddingRoles.Worker);
        var bus = host.Services.GetRequiredService<IBus>();

        // Run A: clap-general's text encoder replaced (by another 512-d CLAP text model). Text items
        // re-encode clap-general only; image and audio items are re-fused from their stored atoms.
        var spaceA = Variant("imagebind++", m => m["experts"]!["clap-general"]!["modalities"]!["text"]!["model"] = "encoders/clap-music/text.onnx");
        var original = EngineFixture.Load("imagebind++");
        var vA = await PublishAsync(h.Database, spaceA);
        var before = EncoderRows(host, original, spaceA);
        var idA = RunIds.For(spaceA.Name, spaceA.Version);
        await bus.Publish(new StartReembedding(idA, spaceA.Name, spaceA.Version, AutoCutover: true, "test"));
        var runA = await WaitForAsync(h.Database, idA, "Active");
        var after = EncoderRows(host, original, spaceA);

        Assert.Equal(items.Count, runA.Items);
        Assert.Equal(new Dictionary<string, long> { ["clap-general"] = texts.Count }, runA.ReencodeByExpert);
        Assert.Equal(items.Count - texts.Count, runA.Refuse);
        Assert.Empty(runA.NotRetrievableByReason);
        Assert.Contains(runA.Changes, c => c.Contains("clap-general", StringComparison.Ordinal));
        Assert.Equal(items.Count, runA.Done);
        Assert.Empty(runA.FailedByReason);
        // Encoder rows per model file: the replaced encoder ran once per text item, nothing else ran.
        var ranA = after.ToDictionary(kv => kv.Key, kv => kv.Value - before[kv.Key]);
        Assert.Equal(texts.Count, ranA["encoders/clap-music/text.onnx"]);
        Assert.All(ranA.Where(kv => kv.Key != "encoders/clap-music/text.onnx"), kv => Assert.True(kv.Value == 0, $"{kv.Key} ran {kv.Value} rows"));
        Assert.Equal(vA.Id, (await h.ActiveVersionAsync()).Id);
        await AssertFromScratchAsync(engine, h.Database, vA, spaceA, items);

        // Run B from A: other factors (a preset), clap-general's text back to its own model (its
        // atoms are still stored: a re-fusion), and clap-music's audio encoder replaced: audio items
        // re-encode clap-music, except the inline one, whose content was not kept: it is listed.
        var spaceB = Variant("imagebind++", m =>
        {
            var audio = m["experts"]!["clap-music"]!["modalities"]!["audio"]!;
            audio["model"] = "encoders/clap-general/audio.onnx";
            audio["profile"] = "clap-fusion";
        }, FactorSelection.Parse("at-expertise", []));
        var vB = await PublishAsync(h.Database, spaceB);
        before = EncoderRows(host, original, spaceA, spaceB);
        var idB = RunIds.For(spaceB.Name, spaceB.Version);
        await bus.Publish(new StartReembedding(idB, spaceB.Name, spaceB.Version, AutoCutover: true, "test"));
        var runB = await WaitForAsync(h.Database, idB, "Active");
        after = EncoderRows(host, original, spaceA, spaceB);

        Assert.Equal(spaceA.Version, runB.PreviousDigest);
        Assert.Equal(items.Count, runB.Items);
        Assert.Equal(new Dictionary<string, long> { ["clap-music"] = audios.Length }, runB.ReencodeByExpert);
        Assert.Equal(new Dictionary<string, long> { ["content-not-kept"] = 1 }, runB.NotRetrievableByReason);
        Assert.Equal(items.Count - audios.Length - 1, runB.Refuse);
        Assert.Contains(runB.Changes, c => c.StartsWith("factor ", StringComparison.Ordinal));
        Assert.Equal(items.Count - 1, runB.Done);
        Assert.Equal(new Dictionary<string, long> { ["content-not-kept"] = 1 }, runB.FailedByReason);
        Assert.Equal(["a-tone"], await h.Database.ListAsync<string>("SELECT media_id FROM reembed_failures WHERE run_id = $1 AND reason = 'content-not-kept'", idB));
        var ranB = after.ToDictionary(kv => kv.Key, kv => kv.Value - before[kv.Key]);
        Assert.Equal(audios.Length, ranB["encoders/clap-general/audio.onnx"]);
        Assert.All(ranB.Where(kv => kv.Key != "encoders/clap-general/audio.onnx"), kv => Assert.True(kv.Value == 0, $"{kv.Key} ran {kv.Value} rows"));
        Assert.Equal(vB.Id, (await h.ActiveVersionAsync()).Id);
        await AssertFromScratchAsync(engine, h.Database, vB, spaceB, items.Where(i => i.Id != "a-tone"));
        // The versions before are retained (retired), untouched by the runs.
        await AssertFromScratchAsync(engine, h.Database, v1, original, items);

        // Rollback of run B by the saga: version A is active again, exactly as it was.
        await bus.Publish(new RollbackReembedding(idB));
        await WaitForAsync(h.Database, idB, "RolledBack");
        Assert.Equal(vA.Id, (await h.ActiveVersionAsync()).Id);
        await AssertFromScratchAsync(engine, h.Database, vA, spaceA, items);
        await host.StopAsync();

        // Run C, a pure re-fusion (another preset, every expert's atoms stored), on a machine that
        // has the projector files only: no encoder or tokenizer file is needed, none is opened.
        var projectorsOnly = Directory.CreateTempSubdirectory("freebind-projectors-only-").FullName;
        foreach (var set in original.Manifest.ProjectorSets.Keys)
            Directory.CreateSymbolicLink(Path.Combine(projectorsOnly, set), Path.Combine(EngineFixture.Models, set));
        var fusionOnly = Settings(h, broker, batchSize: 4, sampleSize: 0);
        fusionOnly["Spaces:ModelRoot"] = projectorsOnly;
        using var refuser = await StartHostAsync(fusionOnly, ReembeddingRoles.SagaHost | ReembeddingRoles.Worker);
        var spaceC = EngineFixture.Load("imagebind++", FactorSelection.Parse("versatile", []));
        var vC = await PublishAsync(h.Database, spaceC);
        var idC = RunIds.For(spaceC.Name, spaceC.Version);
        await refuser.Services.GetRequiredService<IBus>().Publish(new StartReembedding(idC, spaceC.Name, spaceC.Version, AutoCutover: true, "test"));
        var runC = await WaitForAsync(h.Database, idC, "Active");
        Assert.Equal(items.Count, runC.Refuse);
        Assert.Empty(runC.ReencodeByExpert);
        Assert.Equal(items.Count, runC.Done);
        await AssertFromScratchAsync(engine, h.Database, vC, spaceC, items);
        await refuser.StopAsync();

        // Run D on a machine whose model folder holds none of the files: the run fails at once with
        // the reason, not after a minute of redeliveries ending in a fault.
        var noFiles = Directory.CreateTempSubdirectory("freebind-no-models-").FullName;
        try
        {
            var bare = Settings(h, broker, batchSize: 4, sampleSize: 0);
            bare["Spaces:ModelRoot"] = noFiles;
            using var bareHost = await StartHostAsync(bare, ReembeddingRoles.SagaHost | ReembeddingRoles.Worker);
            var spaceD = EngineFixture.Load("imagebind++", FactorSelection.Parse("versatile", ["audio=0.4"]));
            var vD = await PublishAsync(h.Database, spaceD);
            var idD = RunIds.For(spaceD.Name, spaceD.Version);
            var started = System.Diagnostics.Stopwatch.StartNew();
            await bareHost.Services.GetRequiredService<IBus>().Publish(new StartReembedding(idD, spaceD.Name, spaceD.Version, AutoCutover: true, "test"));
            var runD = await WaitForAsync(h.Database, idD, "Failed", TimeSpan.FromMinutes(1));
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(30), $"the run failed after {started.Elapsed}: retried instead of failing");
            Assert.Contains($"version v{vD.Id} of 'imagebind++' cannot be loaded here", runD.Reason, StringComparison.Ordinal);
            Assert.Contains(noFiles, runD.Reason, StringComparison.Ordinal);
            Assert.DoesNotContain("\n", runD.Reason, StringComparison.Ordinal);
            Assert.Equal(vC.Id, (await h.ActiveVersionAsync()).Id);
            await bareHost.StopAsync();
        }
        finally
        {
            Directory.Delete(noFiles, recursive: true);
        }
    }
}
