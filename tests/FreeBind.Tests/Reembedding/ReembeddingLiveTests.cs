using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Reembedding;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Spaces;
using FreeBind.Tests.Ingestion;
using FreeBind.Tests.Persistence;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using static FreeBind.Tests.Reembedding.ReembeddingScenario;

namespace FreeBind.Tests.Reembedding;

/// <summary>
/// A run under live traffic on the real services: the ingestion worker keeps writing (new ids behind
/// and ahead of the backfill's cursor, new content for ids already backfilled and not yet reached,
/// deletes on both sides) while the saga's workers backfill; and a run cancelled mid-backfill.
/// </summary>
[Collection(RabbitMqCollection.Name)]
public sealed class ReembeddingLiveTests(EngineFixture engine, RabbitMqVirtualHost broker) : IClassFixture<RabbitMqVirtualHost>, IClassFixture<EngineFixture>
{
    private const int Archive = 48;
    private const int BatchSize = 6;

    private static List<Item> Texts(string prefix, int from, int count, string caption = "caption") =>
        [.. Enumerable.Range(from, count).Select(i => Text($"{prefix}-{i:D3}", $"{caption} {prefix} {i}"))];

    private static object Deleted(string id) => new { id, tenant = "acme", type = "deleted" };

    // Each insert into the new version's table takes a while, so the run is still backfilling when
    // the live writes arrive (and a cancel lands mid-backfill).
    private static Task SlowWritesAsync(TestDatabase db, SpaceVersion version, double seconds) => db.ScalarAsync<int>($"""
        CREATE FUNCTION test_slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep({seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}); RETURN NEW; END $$;
        CREATE TRIGGER test_slow_insert BEFORE INSERT ON "{version.TableName}" FOR EACH ROW EXECUTE FUNCTION test_slow_insert();
        SELECT 1;
        """);

    private static async Task<ReembeddingRun> WaitForBackfillAsync(TestDatabase db, Guid id, int batches)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline)
        {
            if (await Runs(db).LoadAsync(id) is { CompletedBatches.Count: > 0 } run && run.CompletedBatches.Count >= batches)
            {
                Assert.True(run.CurrentState == "Backfilling" && run.CompletedBatches.Count < Archive / BatchSize,
                    $"the backfill is over ({run.CurrentState}, {run.CompletedBatches.Count} batches) before the test could act: slow the writes down");
                return run;
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"run {id}: fewer than {batches} batches completed");
    }

    [Fact]
    public async Task Live_upserts_and_deletes_during_the_backfill_leave_the_active_and_the_new_version_exactly_right()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind++");
        var live = await h.StartWorkerAsync();
        var archive = Texts("m", 0, Archive);
        await h.ProduceAsync(archive.Select(i => (i.Id, i.Event)));
        await live.Metrics.WaitForCompletedAsync(archive.Count, TimeSpan.FromMinutes(2));
        var v1 = await h.ActiveVersionAsync();
        var space1 = EngineFixture.Load("imagebind++");

        var space2 = EngineFixture.Load("imagebind++", FactorSelection.Parse("at-expertise", []));
        var v2 = await PublishAsync(h.Database, space2);
        await SlowWritesAsync(h.Database, v2, 0.1);
        using var host = await StartHostAsync(Settings(h, broker, BatchSize, sampleSize: 10), ReembeddingRoles.SagaHost | ReembeddingRoles.Worker);
        var id = RunIds.For(space2.Name, space2.Version);
        await host.Services.GetRequiredService<IBus>().Publish(new StartReembedding(id, space2.Name, space2.Version, AutoCutover: false, "test"));
        await WaitForBackfillAsync(h.Database, id, 2);

        // Keyset order: "a-" ids sort before every archived "m-" id (behind the cursor), "z-" ids after
        // (ahead of it); m-000..m-011 are backfilled by now, m-036.. are not.
        var behind = Texts("a", 0, 4);
        var ahead = Texts("z", 0, 4);
        var changedDone = Texts("m", 0, 4, "new content of");
        var changedAhead = Texts("m", 40, 4, "new content of");
        string[] deleted = ["m-005", "m-006", "m-044", "m-045"];
        var events = behind.Concat(ahead).Concat(changedDone).Concat(changedAhead).Select(i => (i.Id, i.Event))
            .Concat(deleted.Select(d => (d, Deleted(d))))
            .ToList();
        await h.ProduceAsync(events);
        await live.Metrics.WaitForCompletedAsync(archive.Count + events.Count, TimeSpan.FromMinutes(2));

        var ready = await WaitForAsync(h.Database, id, "Ready");
        Assert.Contains(ready.Findings, f => f.Contains(", 0 missing", StringComparison.Ordinal));
        Assert.Empty(ready.FailedByReason);

        // The items as they are now, and each version computed from scratch from them.
        var current = archive.Where(i => !deleted.Contains(i.Id))
            .Select(i => changedDone.Concat(changedAhead).FirstOrDefault(c => c.Id == i.Id) ?? i)
            .Concat(behind).Concat(ahead)
            .ToList();
        Assert.Equal(Archive - deleted.Length + behind.Count + ahead.Count, current.Count);
        await AssertFromScratchAsync(engine, h.Database, v1, space1, current);
        await AssertFromScratchAsync(engine, h.Database, v2, space2, current);
        Assert.Equal(v1.Id, (await h.ActiveVersionAsync()).Id);
        await host.StopAsync();
    }

    [Fact]
    public async Task Cancel_mid_backfill_drops_the_building_table_and_leaves_the_active_version_as_it_was()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind++");
        var live = await h.StartWorkerAsync();
        var archive = Texts("m", 0, Archive);
        await h.ProduceAsync(archive.Select(i => (i.Id, i.Event)));
        await live.Metrics.WaitForCompletedAsync(archive.Count, TimeSpan.FromMinutes(2));
        await h.StopWorkerAsync(live);
        var v1 = await h.ActiveVersionAsync();
        const string Rows = "SELECT string_agg(media_id || ':' || embedding::text, ',' ORDER BY media_id) FROM \"{0}\"";
        var before = await h.Database.ScalarAsync<string>(string.Format(System.Globalization.CultureInfo.InvariantCulture, Rows, v1.TableName));

        var space2 = EngineFixture.Load("imagebind++", FactorSelection.Parse("at-expertise", []));
        var v2 = await PublishAsync(h.Database, space2);
        await SlowWritesAsync(h.Database, v2, 0.1);
        using var host = await StartHostAsync(Settings(h, broker, BatchSize, sampleSize: 10), ReembeddingRoles.SagaHost | ReembeddingRoles.Worker);
        var bus = host.Services.GetRequiredService<IBus>();
        var id = RunIds.For(space2.Name, space2.Version);
        await bus.Publish(new StartReembedding(id, space2.Name, space2.Version, AutoCutover: true, "test"));
        await WaitForBackfillAsync(h.Database, id, 1);

        await bus.Publish(new CancelReembedding(id, "test"));
        var cancelled = await WaitForAsync(h.Database, id, "Cancelled");
        Assert.Null(cancelled.ExclusiveKey);
        // Batches in flight at the cancel end before the host stops; none may bring the table back.
        await host.StopAsync();
        Assert.Equal(SpaceVersionState.Cancelled, (await h.Database.Catalog().GetAsync(v2.Id))!.State);
        Assert.False(await h.Database.ScalarAsync<bool>("SELECT to_regclass($1) IS NOT NULL", v2.TableName), $"{v2.TableName} still exists");
        Assert.Equal(v1.Id, (await h.ActiveVersionAsync()).Id);
        Assert.Equal(before, await h.Database.ScalarAsync<string>(string.Format(System.Globalization.CultureInfo.InvariantCulture, Rows, v1.TableName)));
    }
}
