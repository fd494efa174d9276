using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using FreeBind.Consumers.Ingestion;
using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Spaces;
using FreeBind.Encoding;
using FreeBind.Encoding.Experts;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Spaces;
using FreeBind.Tests.Fusion;
using FreeBind.Tests.Persistence.Versions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace FreeBind.Tests.Ingestion;

/// <summary>
/// Space-version routing while the worker runs: a version registered is written too (dual-write,
/// each encoder once per item), a version activated becomes the one published, a version retired
/// stops receiving writes — all without a restart.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class WriteTargetTests(EngineFixture engine, ITestOutputHelper output)
{
    private static IEnumerable<(string, object)> Texts(string prefix, int count) =>
        Enumerable.Range(0, count).Select(i => ($"{prefix}-{i:D3}", IngestionHarness.TextEvent($"{prefix}-{i:D3}", $"{prefix} caption number {i}")));

    [Fact]
    public async Task A_version_registered_and_then_activated_while_the_worker_runs_is_picked_up_without_a_restart()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind++");
        var worker = await h.StartWorkerAsync();
        await h.ProduceAsync(Texts("before", 10));
        await worker.Metrics.WaitForCompletedAsync(10, TimeSpan.FromMinutes(2));
        var v1 = await h.ActiveVersionAsync();

        // A second version of the space: other factors, same experts and models (the shape of a re-embedding's target).
        var space2 = EngineFixture.Load("imagebind++", FactorSelection.Parse("at-expertise", []));
        var space1 = EngineFixture.Load("imagebind++");
        Assert.NotEqual(space1.Version, space2.Version);
        var v2 = await h.Database.Catalog().EnsureVersionAsync(space2.Name, space2.Version, space2.Dimension, space2.Manifest.ToCanonicalJson());
        var targets = worker.Services.GetRequiredService<WriteTargets>();
        await WaitUntilAsync(() => targets.Current.Targets.Count == 2, "the worker did not take the new version as a write target");

        var encodedBefore = Encoded(worker, space1, Modality.Text);
        await h.ProduceAsync(Texts("dual", 12));
        await worker.Metrics.WaitForCompletedAsync(22, TimeSpan.FromMinutes(2));

        var store = h.Database.Store();
        Assert.Equal(22, await store.CountAsync(v1));
        Assert.Equal(12, await store.CountAsync(v2)); // only what came after the version appeared
        // Each encoder ran once per item, whatever the number of versions.
        Assert.Equal(12 * space1.Plans[Modality.Text].Experts.Count, Encoded(worker, space1, Modality.Text) - encodedBefore);
        foreach (var id in new[] { "dual-000", "dual-007", "dual-011" })
        {
            var atoms = (await store.GetAtomsAsync(id)).ToDictionary(a => a.Expert, a => a.Vector.ToArray());
            Assert.Equal(space1.Plans[Modality.Text].Experts.Order(), atoms.Keys.Order());
            Assert.True(Jsonl.MaxAbsDiff(await engine.Fusion.FuseAsync(space1, Modality.Text, atoms), (await store.GetEmbeddingAsync(v1, id))!) <= 1e-5f, id);
            Assert.True(Jsonl.MaxAbsDiff(await engine.Fusion.FuseAsync(space2, Modality.Text, atoms), (await store.GetEmbeddingAsync(v2, id))!) <= 1e-5f, id);
        }

        // Cut-over: v2 active, v1 retired and kept for a rollback, so both are still written; the output describes v2.
        await h.Database.MakeReadyAsync(v2);
        await h.Database.Lifecycle().CutOverAsync(v2);
        await WaitUntilAsync(() => targets.Current.Active?.Version.Id == v2.Id && targets.Current.Targets.Count == 2, "the worker did not follow the cut-over");
        await h.ProduceAsync(Texts("after", 5));
        await worker.Metrics.WaitForCompletedAsync(27, TimeSpan.FromMinutes(2));
        Assert.Equal(27, await store.CountAsync(v1));
        Assert.Equal(17, await store.CountAsync(v2));

        // The retired version is dropped: it leaves the targets, and new items go to v2 alone.
        await h.Database.Lifecycle().DropAsync((await h.Database.Catalog().GetAsync(v1.Id))!);
        await WaitUntilAsync(() => targets.Current.Targets is [var only] && only.Version.Id == v2.Id, "the worker kept writing a dropped version");
        await h.ProduceAsync(Texts("late", 3));
        await worker.Metrics.WaitForCompletedAsync(30, TimeSpan.FromMinutes(2));
        Assert.Equal(20, await store.CountAsync(v2));

        var published = h.ReadTopic(h.OutputTopic, 30, TimeSpan.FromSeconds(30))
            .ToDictionary(m => m.Message.Key, m => MediaEmbedded.Parse(m.Message.Value));
        Assert.Equal(30, published.Count);
        Assert.Equal(space1.Version, published["dual-003"].SpaceVersion);
        Assert.Equal(space2.Version, published["after-003"].SpaceVersion);
        Assert.Equal(space2.Version, published["late-002"].SpaceVersion);
        output.WriteLine($"v1 {v1.Digest}: 27 rows until dropped, v2 {v2.Digest}: 20 rows");
    }

    [Fact]
    public async Task A_version_change_reaches_the_worker_by_notification_within_seconds_with_the_poll_at_an_hour()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind++");
        var logs = new LogCapture();
        var worker = await h.StartWorkerAsync(overrides: new Dictionary<string, string?>
        {
            ["Ingestion:TargetPollSeconds"] = "3600",
            ["Logging:LogLevel:FreeBind.Consumers.Spaces.TargetWatcher"] = "Debug",
        }, configure: logs.AddTo);
        await h.ProduceAsync(Texts("first", 2));
        await worker.Metrics.WaitForCompletedAsync(2, TimeSpan.FromMinutes(2));
        // Listening (so the change below cannot be caught by the read that follows a (re)connection).
        await logs.WaitForAsync(e => e.EventId == 5010, "the watcher never listened");
        var targets = worker.Services.GetRequiredService<WriteTargets>();
        var v1 = await h.ActiveVersionAsync();

        var space2 = EngineFixture.Load("imagebind++", FactorSelection.Parse("at-expertise", []));
        var registered = Stopwatch.StartNew();
        var v2 = await h.Database.Catalog().EnsureVersionAsync(space2.Name, space2.Version, space2.Dimension, space2.Manifest.ToCanonicalJson());
        await WaitUntilAsync(() => targets.Current.Targets.Any(t => t.Version.Id == v2.Id), "a registered version was not picked up within 15 s with the poll at 3600 s: no notification arrived",
            TimeSpan.FromSeconds(15));
        output.WriteLine($"registration seen after {registered.Elapsed.TotalMilliseconds:F0} ms");

        await h.Database.MakeReadyAsync(v2);
        var cutOver = Stopwatch.StartNew();
        await h.Database.Lifecycle().CutOverAsync(v2);
        await WaitUntilAsync(() => targets.Current.Active?.Version.Id == v2.Id, "a cut-over was not picked up within 15 s with the poll at 3600 s: no notification arrived",
            TimeSpan.FromSeconds(15));
        output.WriteLine($"cut-over seen after {cutOver.Elapsed.TotalMilliseconds:F0} ms");
        Assert.Contains(targets.Current.Targets, t => t.Version.Id == v1.Id && t.Version.State == SpaceVersionState.Retired);
    }

    [Fact]
    public async Task Items_processed_before_a_target_change_and_written_after_it_land_in_the_new_set_fused_from_the_same_atoms()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind++");
        // A gate on media writes: while closed, every write transaction fails as a serialization
        // failure (transient: retried), so the batch being written waits and the items behind it
        // are processed (encoded, fused for the targets of that time) and held. (A write held open
        // inside Postgres would instead block the new version's CREATE TABLE, which references media.)
        await h.Database.ScalarAsync<int>("""
            CREATE TABLE test_gate (closed boolean NOT NULL);
            INSERT INTO test_gate VALUES (false);
            CREATE FUNCTION test_gate_check() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF (SELECT closed FROM test_gate) THEN
                    RAISE EXCEPTION 'the test holds writes' USING ERRCODE = 'serialization_failure';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_gate_check BEFORE INSERT ON media FOR EACH ROW EXECUTE FUNCTION test_gate_check();
            SELECT 1;
            """);
        var clock = Stopwatch.StartNew();
        var worker = await h.StartWorkerAsync();
        await h.ProduceAsync(Texts("before", 3));
        await worker.Metrics.WaitForCompletedAsync(3, TimeSpan.FromMinutes(2));
        var v1 = await h.ActiveVersionAsync();
        var space1 = EngineFixture.Load("imagebind++");
        var experts = space1.Plans[Modality.Text].Experts.Count;
        var encodedBefore = Encoded(worker, space1, Modality.Text);

        // One item's write is held; eleven more are processed for the set {v1} behind it.
        await h.Database.ScalarAsync<int>("UPDATE test_gate SET closed = true; SELECT 1");
        var retries = worker.Metrics.Retries;
        await h.ProduceAsync(Texts("stuck", 1));
        await WaitUntilAsync(() => worker.Metrics.Retries > retries, "the first write never reached the gate");
        await h.ProduceAsync(Texts("held", 11));
        await WaitUntilAsync(() => Encoded(worker, space1, Modality.Text) - encodedBefore == 12 * experts, "the held items were not processed");
        await Task.Delay(500); // fusion follows the encoders
        Assert.Equal(3, worker.Metrics.Completed);
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F1} s: 12 items processed for {{v1}}, none written");

        // The set changes while they wait: v2 is registered, then the gate opens.
        var space2 = EngineFixture.Load("imagebind++", FactorSelection.Parse("at-expertise", []));
        var v2 = await h.Database.Catalog().EnsureVersionAsync(space2.Name, space2.Version, space2.Dimension, space2.Manifest.ToCanonicalJson());
        var targets = worker.Services.GetRequiredService<WriteTargets>();
        await WaitUntilAsync(() => targets.Current.Targets.Count == 2, "the worker did not take the new version as a write target");
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F1} s: v2 taken as a target");
        await h.Database.ScalarAsync<int>("UPDATE test_gate SET closed = false; SELECT 1");
        await worker.Metrics.WaitForCompletedAsync(15, TimeSpan.FromMinutes(2));
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F1} s: all written");

        var store = h.Database.Store();
        Assert.Equal(15, await store.CountAsync(v1));
        // The write in progress during the change went to the set it started with; everything written after it to the new set.
        Assert.Null(await store.GetEmbeddingAsync(v2, "stuck-000"));
        Assert.Equal(11, await store.CountAsync(v2));
        // Re-targeting fused from the atoms the items already had: no encoder ran again.
        Assert.Equal(12 * experts, Encoded(worker, space1, Modality.Text) - encodedBefore);
        foreach (var id in Enumerable.Range(0, 11).Select(i => $"held-{i:D3}"))
        {
            var atoms = (await store.GetAtomsAsync(id)).ToDictionary(a => a.Expert, a => a.Vector.ToArray());
            Assert.Equal(space1.Plans[Modality.Text].Experts.Order(), atoms.Keys.Order());
            Assert.True(Jsonl.MaxAbsDiff(await engine.Fusion.FuseAsync(space1, Modality.Text, atoms), (await store.GetEmbeddingAsync(v1, id))!) <= 1e-5f, id);
            Assert.True(Jsonl.MaxAbsDiff(await engine.Fusion.FuseAsync(space2, Modality.Text, atoms), (await store.GetEmbeddingAsync(v2, id))!) <= 1e-5f, id);
        }
    }

    [Fact]
    public async Task A_table_dropped_by_hand_under_a_live_version_is_retried_with_backoff_not_in_a_spin_and_the_write_resumes_when_it_is_back()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var logs = new LogCapture();
        var worker = await h.StartWorkerAsync(configure: logs.AddTo);
        await h.ProduceAsync(Texts("first", 2));
        await worker.Metrics.WaitForCompletedAsync(2, TimeSpan.FromMinutes(2));
        var v1 = await h.ActiveVersionAsync();

        // The active version's table is dropped by hand: its row still says active, so every
        // re-read of the targets gives the same set and every write fails the same way.
        await h.Database.ScalarAsync<int>($"DROP TABLE \"{v1.TableName}\"; SELECT 1");
        var retriesBefore = worker.Metrics.Retries;
        var logsBefore = logs.Entries.Count;
        await h.ProduceAsync(Texts("second", 1));
        await Task.Delay(TimeSpan.FromSeconds(8));
        var retried = worker.Metrics.Retries - retriesBefore;
        var lines = logs.Entries.Count - logsBefore;
        output.WriteLine($"8 s with the table gone: {retried} retries, {lines} log lines");
        Assert.InRange(retried, 1, 20); // backoff from 100 ms to 5 s: a handful; a loop without one makes thousands
        Assert.InRange(lines, 1, 20);
        Assert.Equal(2, worker.Metrics.Completed);

        // The table is back (the version ensured again): the held write goes through.
        var space = EngineFixture.Load("imagebind");
        await h.Database.Catalog().EnsureVersionAsync(space.Name, space.Version, space.Dimension, space.Manifest.ToCanonicalJson());
        await worker.Metrics.WaitForCompletedAsync(3, TimeSpan.FromMinutes(2));
        Assert.NotNull(await h.Database.Store().GetEmbeddingAsync(v1, "second-000"));
        Assert.Null(worker.Services.GetRequiredService<IngestionWorker>().Fault);
    }

    /// <summary>
    /// A version of the space whose model files are nowhere under this worker's model root (a
    /// version of other models, deployed elsewhere): its manifest names files under <c>absent/</c>.
    /// </summary>
    private static Task<SpaceVersion> RegisterAbsentAsync(IngestionHarness h, char digit)
    {
        var space = EngineFixture.Load(h.Space);
        var manifest = JsonNode.Parse(space.Manifest.ToCanonicalJson())!;
        static void Move(JsonNode? node, string key)
        {
            if (node?[key] is JsonValue v) node[key] = "absent/" + v.GetValue<string>();
            else if (node?[key] is JsonArray files)
                for (var i = 0; i < files.Count; i++) files[i] = "absent/" + files[i]!.GetValue<string>();
        }
        foreach (var (_, expert) in manifest["experts"]!.AsObject())
            foreach (var (_, modality) in expert!["modalities"]!.AsObject())
            {
                Move(modality, "model");
                Move(modality, "tokenizer");
            }
        foreach (var (_, set) in manifest["projectorSets"]!.AsObject()) Move(set, "files");
        return h.Database.Catalog().EnsureVersionAsync(space.Name, "sha256:" + new string(digit, 64), space.Dimension, manifest.ToJsonString());
    }

    [Fact]
    public async Task A_version_whose_model_files_are_all_absent_is_refused_in_one_line_at_start_and_while_running_and_the_worker_goes_on()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind++");
        var absentAtStart = await RegisterAbsentAsync(h, 'a');
        var logs = new LogCapture();
        var worker = await h.StartWorkerAsync(configure: logs.AddTo);
        var ingestion = worker.Services.GetRequiredService<IngestionWorker>();
        await h.ProduceAsync(Texts("first", 5));
        await worker.Metrics.WaitForCompletedAsync(5, TimeSpan.FromMinutes(2));
        Assert.Null(ingestion.Fault);
        var active = await h.ActiveVersionAsync();
        Assert.Equal(5, await h.Database.Store().CountAsync(active));
        var refusedAtStart = Assert.Single(logs.With(5003));
        Assert.Contains($"v{absentAtStart.Id} of imagebind++ (building)", refusedAtStart.Message);
        Assert.Contains("holds none of the", refusedAtStart.Message);
        Assert.Contains("Spaces:ModelRoot", refusedAtStart.Message);

        // While running: a second such version is refused the same way, and the watcher goes on
        // following the space (a loadable version registered after it becomes a target).
        var absentLater = await RegisterAbsentAsync(h, 'b');
        await logs.WaitForAsync(e => e.EventId == 5003 && e.Message.Contains($"v{absentLater.Id} ", StringComparison.Ordinal), "the second absent version was not refused");
        var other = EngineFixture.Load(h.Space, FactorSelection.Parse("at-expertise", []));
        Assert.NotEqual(active.Digest, other.Version);
        var good = await h.Database.Catalog().EnsureVersionAsync(other.Name, other.Version, other.Dimension, other.Manifest.ToCanonicalJson());
        var targets = worker.Services.GetRequiredService<WriteTargets>();
        await WaitUntilAsync(() => targets.Current.Targets.Any(t => t.Version.Id == good.Id), "the watcher stopped following the space after refusing a version");
        await h.ProduceAsync(Texts("second", 5));
        await worker.Metrics.WaitForCompletedAsync(10, TimeSpan.FromMinutes(2));
        Assert.Equal(10, await h.Database.Store().CountAsync(active));
        Assert.Equal(5, await h.Database.Store().CountAsync(good));
        Assert.Null(ingestion.Fault);

        await h.StopWorkerAsync(worker);
        Assert.Null(ingestion.Fault);
        Assert.Equal(2, logs.With(5003).Count); // once per version, not once per poll
        Assert.Empty(logs.AtLeast(LogLevel.Critical));
        Assert.DoesNotContain(logs.Entries, e => e.Exception is not null);
    }

    [Fact]
    public async Task An_active_version_whose_model_files_are_all_absent_stops_the_worker_at_start_with_exit_1_and_one_line()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var absent = await RegisterAbsentAsync(h, 'c');
        await h.Database.Catalog().ActivateAsync(absent.Space, absent.Digest);
        var process = h.StartWorkerProcess("w1");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await process.WaitForExitAsync(cts.Token);
        output.WriteLine(h.Logs());

        Assert.Equal(1, process.ExitCode);
        var fatal = Assert.Single(h.Logs().Split('\n'), l => l.Contains("crit:", StringComparison.Ordinal));
        Assert.Contains($"the active version v{absent.Id} of space 'imagebind'", fatal);
        Assert.Contains("roll the space back", fatal);
        Assert.DoesNotContain("   at ", h.Logs());
        Assert.Equal(0, await h.Database.ScalarAsync<long>("SELECT count(*) FROM media"));
    }

    [Fact]
    public async Task A_failure_nobody_foresaw_while_reading_the_targets_stops_the_worker_in_one_line_instead_of_leaving_it_deaf()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var logs = new LogCapture();
        var worker = await h.StartWorkerAsync(configure: logs.AddTo);
        var ingestion = worker.Services.GetRequiredService<IngestionWorker>();
        await h.ProduceAsync(Texts("first", 3));
        await worker.Metrics.WaitForCompletedAsync(3, TimeSpan.FromMinutes(2));

        // The schema drifts under the worker (a column's type changed by hand): reading the targets
        // now fails in a way no retry can mend, and the worker must say so and stop, not go on deaf.
        await h.Database.ScalarAsync<int>("ALTER TABLE space_versions ALTER COLUMN digest TYPE bytea USING convert_to(digest, 'UTF8'); SELECT 1");
        await h.Database.ScalarAsync<int>($"SELECT 1 FROM pg_notify('{SpaceCatalog.ChangesChannel}', 'imagebind')");
        var stopping = worker.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().ApplicationStopping;
        await WaitUntilAsync(() => stopping.IsCancellationRequested, "the worker did not stop after its targets could no longer be read");

        Assert.IsType<InvalidCastException>(ingestion.Fault);
        var fatal = Assert.Single(logs.AtLeast(LogLevel.Critical));
        Assert.StartsWith("The worker stops: an unforeseen InvalidCastException: ", fatal.Message);
        Assert.DoesNotContain('\n', fatal.Message);
        Assert.Null(fatal.Exception);
    }

    // Items the space's encoders for a modality ran, from the freebind.encoder.items counter.
    private static long Encoded(RunningWorker worker, SpaceDefinition space, Modality modality)
    {
        var items = FreeBind.Tests.Encoding.EncoderCounts.Items(worker.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());
        return space.Plans[modality].Experts.Sum(e => items.GetValueOrDefault(space.EncoderOf(e, modality).Model));
    }

    private static Task WaitUntilAsync(Func<bool> condition, string failure, TimeSpan? timeout = null) =>
        WaitUntilAsync(() => Task.FromResult(condition()), failure, timeout);

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string failure, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(failure);
            await Task.Delay(50);
        }
    }
}
