using System.Diagnostics;
using FreeBind.Persistence;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Pgvector;

namespace FreeBind.Tests.Persistence.Versions;

/// <summary>
/// Backfill reads and the race-safe backfill write, against live ingestion writing the same items at
/// the same time. Interleavings are forced: a second connection holds a live transaction open while
/// the backfill runs, and the test waits until Postgres reports the backfill blocked on it.
/// Each test has its own database, because ranges read every media row.
/// </summary>
public sealed class BackfillTests
{
    private const int Dim = 16;
    private static readonly string[] Served = ["image", "audio"];

    private sealed record Setup(TestDatabase Db, SpaceVersion Active, SpaceVersion Building, List<EmbeddedItem> Items) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => Db.DisposeAsync();
    }

    private static string Modality(int i) => (i % 3) switch { 0 => "image", 1 => "audio", _ => "text" };

    private static EmbeddedItem Item(int i, string content = "") =>
        TestData.Item($"m{i:D3}", i, Dim) with { Media = TestData.Media($"m{i:D3}", modality: Modality(i), content: $"m{i:D3}{content}") };

    /// <summary>40 items of three modalities live in an active version; a new version is building (no index).</summary>
    private static async Task<Setup> SetUpAsync(int count = 40)
    {
        var db = await TestDatabase.CreateAsync();
        var active = await db.Catalog().EnsureVersionAsync("bf", "sha256:old", Dim, "{}");
        var items = Enumerable.Range(0, count).Select(i => Item(i)).ToList();
        await db.Store().WriteBatchAsync(active, items);
        active = await db.Catalog().ActivateAsync("bf", "sha256:old");
        var building = await db.Catalog().EnsureVersionAsync("bf", "sha256:new", Dim, "{}", createIndex: false);
        return new Setup(db, active, building, items);
    }

    /// <summary>The new version's vector of an item as the backfill computes it from what it read.</summary>
    private static float[] Fused(BackfillSource source) => TestData.Vector(source.Sha256.GetHashCode(StringComparison.Ordinal), Dim);

    private static List<BackfillRow> Rows(IEnumerable<BackfillSource> sources) =>
        sources.Select(s => new BackfillRow(s.MediaId, s.Modality, s.Sha256, Fused(s), [], [])).ToList();

    private static BackfillWriter Writer(NpgsqlDataSource dataSource) => new(dataSource, NullLogger<BackfillWriter>.Instance);

    private static async Task<List<BackfillSource>> ReadAllAsync(TestDatabase db, IReadOnlyCollection<AtomKey>? atoms = null, int size = 1000)
    {
        var reader = new BackfillReader(db.DataSource);
        var all = new List<BackfillSource>();
        for (var range = await reader.NextRangeAsync(Served, null, size); range is not null; range = await reader.NextRangeAsync(Served, range.Last, size))
            all.AddRange(await reader.ReadAsync(range, Served, atoms));
        return all;
    }

    private static async Task<float[]?> VectorAsync(TestDatabase db, SpaceVersion version, string id) =>
        await db.Store().GetEmbeddingAsync(version, id);

    /// <summary>Live ingestion's dual-write: the media row, its atoms and every target version, in one transaction.</summary>
    private static Task LiveUpsertAsync(TestDatabase db, EmbeddedItem item, params SpaceVersion[] targets) =>
        db.Store().WriteAsync([new ItemWrite(item.Media, item.Atoms, targets.Select(t => new VersionEmbedding(t, item.Embedding, item.Tags)).ToList())]);

    /// <summary>Waits until the backend named <paramref name="application"/> waits for a lock.</summary>
    private static async Task WaitUntilBlockedAsync(TestDatabase db, string application, Task backfill)
    {
        var wait = Stopwatch.StartNew();
        while (await db.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", application) == 0)
        {
            Assert.False(backfill.IsCompleted, "the backfill finished without waiting for the live transaction");
            Assert.True(wait.Elapsed < TimeSpan.FromSeconds(20), "the backfill never blocked on the live transaction");
            await Task.Delay(20);
        }
    }

    private static NpgsqlDataSource NamedDataSource(TestDatabase db, string application) =>
        PersistenceExtensions.CreateDataSource(new NpgsqlConnectionStringBuilder(db.ConnectionString) { ApplicationName = application }.ConnectionString);

    [Fact]
    public async Task Ranges_cover_every_item_of_the_served_modalities_once_and_reads_carry_the_atoms_asked_for()
    {
        await using var s = await SetUpAsync();
        var reader = new BackfillReader(s.Db.DataSource);
        var ranges = new List<BackfillRange>();
        for (var r = await reader.NextRangeAsync(Served, null, 7); r is not null; r = await reader.NextRangeAsync(Served, r.Last, 7))
            ranges.Add(r);

        var read = await ReadAllAsync(s.Db, [new AtomKey("imagebind", "sha256:ib")], size: 7);
        var counts = await reader.CountAsync(["image", "audio", "text"]);

        var expected = s.Items.Where(i => Served.Contains(i.Media.Modality)).Select(i => i.Media.Id).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, read.Select(r => r.MediaId));
        Assert.Equal(expected.Count, ranges.Sum(r => r.Items));
        Assert.All(ranges.SkipLast(1), r => Assert.Equal(7, r.Items));
        Assert.All(ranges.Skip(1).Zip(ranges), p => Assert.Equal(p.Second.Last, p.First.After));
        Assert.All(read, r =>
        {
            var item = s.Items.Single(i => i.Media.Id == r.MediaId);
            Assert.Equal((item.Media.Modality, item.Media.Sha256), (r.Modality, r.Sha256));
            var atom = Assert.Single(r.Atoms);
            Assert.Equal(("imagebind", "sha256:ib"), (atom.Expert, atom.ModelDigest));
            Assert.Equal(item.Atoms[0].Vector.ToArray(), atom.Vector.ToArray());
        });
        Assert.Equal(2, (await ReadAllAsync(s.Db)).First().Atoms.Count);
        Assert.Equal(new Dictionary<string, long> { ["image"] = 14, ["audio"] = 13, ["text"] = 13 }, counts);
    }

    [Fact]
    public async Task A_whole_backfill_fills_the_new_version_and_a_redelivered_batch_changes_nothing()
    {
        await using var s = await SetUpAsync();
        var read = await ReadAllAsync(s.Db);

        var first = await Writer(s.Db.DataSource).WriteAsync(s.Building, Rows(read));
        var again = await Writer(s.Db.DataSource).WriteAsync(s.Building, Rows(read));

        Assert.Equal(new BackfillWriteResult(read.Count, 0, 0), first);
        Assert.Equal(new BackfillWriteResult(0, read.Count, 0), again);
        Assert.Equal(read.Count, await s.Db.Store().CountAsync(s.Building));
        foreach (var source in read)
            Assert.Equal(Fused(source), await VectorAsync(s.Db, s.Building, source.MediaId));
    }

    [Fact]
    public async Task A_live_write_committed_after_the_read_wins_whether_the_content_changed_or_not()
    {
        await using var s = await SetUpAsync();
        var read = await ReadAllAsync(s.Db);
        var changed = Item(0, content: "-v2") with { Embedding = TestData.Vector(777, Dim) };
        var replayed = s.Items[1] with { Embedding = TestData.Vector(778, Dim) };
        await LiveUpsertAsync(s.Db, changed, s.Active, s.Building);
        await LiveUpsertAsync(s.Db, replayed, s.Active, s.Building);

        var result = await Writer(s.Db.DataSource).WriteAsync(s.Building, Rows(read));

        Assert.Equal(new BackfillWriteResult(read.Count - 2, 1, 1), result);
        Assert.Equal(changed.Embedding.ToArray(), await VectorAsync(s.Db, s.Building, "m000"));
        Assert.Equal(replayed.Embedding.ToArray(), await VectorAsync(s.Db, s.Building, "m001"));
    }

    [Fact]
    public async Task An_item_changed_before_a_worker_writes_the_new_version_is_skipped_then_found_by_the_catch_up_read()
    {
        await using var s = await SetUpAsync();
        var read = await ReadAllAsync(s.Db);
        // The worker's target set is stale: it writes only the active version.
        await LiveUpsertAsync(s.Db, Item(3, content: "-v2"), s.Active);
        var run = Guid.NewGuid();

        var result = await Writer(s.Db.DataSource).WriteAsync(s.Building, Rows(read));
        var missing = await new BackfillReader(s.Db.DataSource).ReadMissingAsync(s.Building, Served, run, null, 100, null);
        var catchUp = await Writer(s.Db.DataSource).WriteAsync(s.Building, Rows(missing));

        Assert.Equal(1, result.Superseded);
        var item = Assert.Single(missing);
        Assert.Equal(("m003", TestData.Sha256("m003-v2")), (item.MediaId, item.Sha256));
        Assert.Equal(new BackfillWriteResult(1, 0, 0), catchUp);
        Assert.Equal(Fused(item), await VectorAsync(s.Db, s.Building, "m003"));
        Assert.Empty(await new BackfillReader(s.Db.DataSource).ReadMissingAsync(s.Building, Served, run, null, 100, null));
    }

    [Fact]
    public async Task A_row_left_behind_by_a_worker_that_had_not_seen_the_new_version_is_found_stale_and_replaced()
    {
        await using var s = await SetUpAsync();
        var read = await ReadAllAsync(s.Db);
        await Writer(s.Db.DataSource).WriteAsync(s.Building, Rows(read));
        // After the backfill wrote m003 from its first content, a worker that does not know the new
        // version yet changes it and writes the active version only.
        await LiveUpsertAsync(s.Db, Item(3, content: "-v2"), s.Active);
        var run = Guid.NewGuid();
        var verifier = new VersionVerifier(s.Db.DataSource, s.Db.Search());

        var coverage = await verifier.CoverageAsync(run, s.Building, Served);
        var stale = await new BackfillReader(s.Db.DataSource).ReadMissingAsync(s.Building, Served, run, null, 100, null);
        var redelivered = await Writer(s.Db.DataSource).WriteAsync(s.Building, Rows(read));
        var catchUp = await Writer(s.Db.DataSource).WriteAsync(s.Building, Rows(stale));

        Assert.Equal(1, coverage.Missing);
        Assert.Equal(["m003"], coverage.MissingSample);
        var item = Assert.Single(stale);
        Assert.Equal(TestData.Sha256("m003-v2"), item.Sha256);
        Assert.Equal(new BackfillWriteResult(0, read.Count - 1, 1), redelivered);
        Assert.Equal(new BackfillWriteResult(1, 0, 0), catchUp);
        Assert.Equal(Fused(item), await VectorAsync(s.Db, s.Building, "m003"));
        Assert.Equal(item.Sha256, await s.Db.ScalarAsync<string>($"SELECT content_sha256 FROM \"{s.Building.TableName}\" WHERE media_id = 'm003'"));
        Assert.Equal(0, (await verifier.CoverageAsync(run, s.Building, Served)).Missing);
    }

    [Fact]
    public async Task A_live_update_in_flight_makes_the_backfill_wait_then_skip_the_item()
    {
        await using var s = await SetUpAsync();
        var read = await ReadAllAsync(s.Db);
        var application = "backfill-" + Guid.NewGuid().ToString("N")[..8];
        await using var backfillSource = NamedDataSource(s.Db, application);
        var live = TestData.Vector(4242, Dim);

        await using var liveConnection = await s.Db.DataSource.OpenConnectionAsync();
        await using var liveTx = await liveConnection.BeginTransactionAsync();
        await using (var cmd = new NpgsqlCommand($"""
            UPDATE media SET sha256 = $2, updated_at = now() WHERE id = $1;
            """, liveConnection, liveTx))
        {
            cmd.Parameters.Add(new() { Value = "m004" });
            cmd.Parameters.Add(new() { Value = TestData.Sha256("m004-v2") });
            await cmd.ExecuteNonQueryAsync();
        }
        await using (var cmd = new NpgsqlCommand(
            $"INSERT INTO \"{s.Building.TableName}\" (media_id, embedding) VALUES ($1, $2) ON CONFLICT (media_id) DO UPDATE SET embedding = excluded.embedding",
            liveConnection, liveTx))
        {
            cmd.Parameters.Add(new() { Value = "m004" });
            cmd.Parameters.Add(new() { Value = new Vector(live) });
            await cmd.ExecuteNonQueryAsync();
        }

        var backfill = Task.Run(() => Writer(backfillSource).WriteAsync(s.Building, Rows(read)));
        await WaitUntilBlockedAsync(s.Db, application, backfill);
        await liveTx.CommitAsync();
        var result = await backfill;

        Assert.Equal(new BackfillWriteResult(read.Count - 1, 0, 1), result);
        Assert.Equal(live, await VectorAsync(s.Db, s.Building, "m004"));
    }

    [Fact]
    public async Task A_live_delete_committed_or_in_flight_neither_fails_the_batch_nor_resurrects_the_item()
    {
        await using var s = await SetUpAsync();
        var read = await ReadAllAsync(s.Db);
        var application = "backfill-" + Guid.NewGuid().ToString("N")[..8];
        await using var backfillSource = NamedDataSource(s.Db, application);
        await s.Db.Store().DeleteAsync(["m006"]);

        await using var liveConnection = await s.Db.DataSource.OpenConnectionAsync();
        await using var liveTx = await liveConnection.BeginTransactionAsync();
        await using (var cmd = new NpgsqlCommand("DELETE FROM media WHERE id = $1", liveConnection, liveTx))
        {
            cmd.Parameters.Add(new() { Value = "m007" });
            Assert.Equal(1, await cmd.ExecuteNonQueryAsync());
        }
        var backfill = Task.Run(() => Writer(backfillSource).WriteAsync(s.Building, Rows(read)));
        await WaitUntilBlockedAsync(s.Db, application, backfill);
        await liveTx.CommitAsync();
        var result = await backfill;

        Assert.Equal(new BackfillWriteResult(read.Count - 2, 0, 2), result);
        Assert.Null(await VectorAsync(s.Db, s.Building, "m006"));
        Assert.Null(await VectorAsync(s.Db, s.Building, "m007"));
        Assert.Equal(0L, await s.Db.ScalarAsync<long>("SELECT count(*) FROM atoms WHERE media_id IN ('m006', 'm007')"));
    }

    [Fact]
    public async Task A_live_write_after_the_backfill_replaces_its_row()
    {
        await using var s = await SetUpAsync();
        var read = await ReadAllAsync(s.Db);
        await Writer(s.Db.DataSource).WriteAsync(s.Building, Rows(read));
        var changed = Item(9, content: "-v2") with { Embedding = TestData.Vector(999, Dim) };

        await LiveUpsertAsync(s.Db, changed, s.Active, s.Building);
        var redelivered = await Writer(s.Db.DataSource).WriteAsync(s.Building, Rows(read));

        Assert.Equal(changed.Embedding.ToArray(), await VectorAsync(s.Db, s.Building, "m009"));
        Assert.Equal(new BackfillWriteResult(0, read.Count - 1, 1), redelivered);
    }

    [Fact]
    public async Task New_atoms_are_stored_with_the_rows_and_tags_only_for_rows_the_backfill_wrote()
    {
        await using var s = await SetUpAsync();
        var vocabulary = await s.Db.ScalarAsync<long>("INSERT INTO tag_vocabularies (tenant, name) VALUES ('acme', 'v') RETURNING id");
        await using (var cmd = s.Db.DataSource.CreateCommand("INSERT INTO tag_labels VALUES ($1, 'dog'), ($1, 'cat')"))
        {
            cmd.Parameters.Add(new() { Value = vocabulary });
            await cmd.ExecuteNonQueryAsync();
        }
        var read = await ReadAllAsync(s.Db);
        // A live dual-write already stored m000 in the new version, with its own tag.
        await LiveUpsertAsync(s.Db, s.Items[0] with { Tags = [new TagScore(vocabulary, "cat", 0.9f)] }, s.Building);
        var rows = read.Select(r => new BackfillRow(r.MediaId, r.Modality, r.Sha256, Fused(r),
            [new Atom("clap-general", "sha256:clap2", TestData.Vector(r.MediaId.GetHashCode(StringComparison.Ordinal), 512))],
            [new TagScore(vocabulary, "dog", 0.5f)])).ToList();

        var result = await Writer(s.Db.DataSource).WriteAsync(s.Building, rows);

        Assert.Equal(read.Count - 1, result.Written);
        Assert.Equal(read.Count, (int)await s.Db.ScalarAsync<long>("SELECT count(*) FROM atoms WHERE model_digest = 'sha256:clap2'"));
        Assert.Equal(read.Count - 1, (int)await s.Db.ScalarAsync<long>("SELECT count(*) FROM media_tags WHERE space_version_id = $1 AND label = 'dog'", s.Building.Id));
        Assert.Equal("cat", await s.Db.ScalarAsync<string>("SELECT string_agg(label, ',') FROM media_tags WHERE space_version_id = $1 AND media_id = 'm000'", s.Building.Id));
    }

    [Fact]
    public async Task Writing_into_a_cancelled_version_or_a_bad_vector_is_refused_with_a_clear_error()
    {
        await using var s = await SetUpAsync();
        var read = await ReadAllAsync(s.Db);
        var wide = new BackfillRow("m000", "image", read[0].Sha256, new float[Dim + 1], [], []);
        var nan = new BackfillRow("m000", "image", read[0].Sha256, Enumerable.Repeat(float.NaN, Dim).ToArray(), [], []);

        var width = await Assert.ThrowsAsync<ArgumentException>(() => Writer(s.Db.DataSource).WriteAsync(s.Building, [wide]));
        var notFinite = await Assert.ThrowsAsync<ArgumentException>(() => Writer(s.Db.DataSource).WriteAsync(s.Building, [nan]));
        await s.Db.Lifecycle().CancelAsync(s.Building, "cancelled by the test");
        var gone = await Assert.ThrowsAsync<SpaceVersionException>(() => Writer(s.Db.DataSource).WriteAsync(s.Building, Rows(read)));
        var goneRead = await Assert.ThrowsAsync<SpaceVersionException>(() => new BackfillReader(s.Db.DataSource).ReadMissingAsync(s.Building, Served, null, null, 10, null));

        Assert.Contains("dimensions", width.Message);
        Assert.Contains("NaN", notFinite.Message);
        Assert.Equal(SpaceVersionRefusal.Ended, gone.Refusal);
        Assert.Contains("cancelled", gone.Message);
        Assert.Equal(SpaceVersionRefusal.Ended, goneRead.Refusal);
    }

    [Fact]
    public async Task Failures_are_listed_once_per_item_with_the_latest_reason()
    {
        await using var db = await TestDatabase.CreateAsync();
        var failures = new RunFailures(db.DataSource);
        var run = Guid.NewGuid();

        await failures.RecordAsync(run, [new ItemFailure("a", "content-unavailable", "uri gone"), new ItemFailure("b", "decode", "bad jpeg")]);
        await failures.RecordAsync(run, [new ItemFailure("b", "decode", "bad jpeg"), new ItemFailure("c", "decode", "truncated"), new ItemFailure("a", "encode", "model error")]);
        await failures.RecordAsync(Guid.NewGuid(), [new ItemFailure("a", "decode")]);

        Assert.Equal(new Dictionary<string, long> { ["decode"] = 2, ["encode"] = 1 }, await failures.CountByReasonAsync(run));
        var page1 = await failures.ListAsync(run, null, 2);
        var page2 = await failures.ListAsync(run, page1[^1].MediaId, 2);
        Assert.Equal(["a", "b", "c"], page1.Concat(page2).Select(f => f.MediaId));
        Assert.Equal(new ItemFailure("a", "encode", "model error"), page1[0]);
    }

    [Fact]
    public async Task The_plan_counts_re_fusions_re_encodes_per_expert_model_and_items_whose_content_is_gone()
    {
        await using var s = await SetUpAsync();
        // m000 and m003 (images) came inline; only m003's bytes were kept. m001 (audio) lost its atom.
        await s.Db.ExecuteAsync("UPDATE media SET source = 'inline' WHERE id IN ('m000', 'm003')");
        await s.Db.ExecuteAsync("INSERT INTO media_content (media_id, data) VALUES ('m003', '\\x0102')");
        await s.Db.ExecuteAsync("DELETE FROM atoms WHERE media_id = 'm001' AND expert = 'imagebind'");
        var ib = new AtomKey("imagebind", "sha256:ib");
        var newIvl = new AtomKey("internvl-c", "sha256:ivl-2");

        var plan = await new BackfillPlanner(s.Db.DataSource).PlanAsync(
            [new AtomNeed("image", [ib, newIvl]), new AtomNeed("audio", [ib]), new AtomNeed("text", [ib, new AtomKey("internvl-c", "sha256:ivl")])]);
        var read = await new BackfillReader(s.Db.DataSource).ReadAsync(new BackfillRange(null, "m003", 4), ["image", "audio"], [ib], withContent: true);

        Assert.Equal(new ModalityPlan("image", 14, 0, 13, 1, null!), plan[0] with { EncodesByAtom = null! });
        Assert.Equal(new Dictionary<AtomKey, long> { [ib] = 0, [newIvl] = 13 }, plan[0].EncodesByAtom);
        Assert.Equal(new ModalityPlan("audio", 13, 12, 1, 0, null!), plan[1] with { EncodesByAtom = null! });
        Assert.Equal(1, plan[1].EncodesByAtom[ib]);
        Assert.Equal((13L, 13L, 0L), (plan[2].Items, plan[2].RefuseOnly, plan[2].NeedEncoding));
        Assert.Equal(["m000", "m001", "m003"], read.Select(r => r.MediaId));
        Assert.False(read[0].Retrievable, $"{read[0].Source} {read[0].Content?.Length}");
        Assert.Null(read[0].Content);
        Assert.Empty(read[1].Atoms);
        Assert.True(read[1].Retrievable);
        Assert.Equal(new byte[] { 1, 2 }, read[2].Content!.Value.ToArray());
    }

    /// <summary>
    /// Both writers at once, in no controlled order: live upserts (new content, replays, new ids),
    /// deletes, and upserts from a worker that does not yet know the new version, while a backfill
    /// walks every range. After the catch-up read, the new version holds exactly one row per live
    /// item, each the vector of the item's current content.
    /// </summary>
    [Fact]
    public async Task Live_writes_racing_a_whole_backfill_leave_the_new_version_exactly_right()
    {
        await using var s = await SetUpAsync(count: 300);
        static float[] Of(string sha) => TestData.Vector(sha.GetHashCode(StringComparison.Ordinal), Dim);
        EmbeddedItem Live(int i, int generation) =>
            Item(i, content: generation == 0 ? "" : $"-g{generation}") is var item ? item with { Embedding = Of(item.Media.Sha256) } : null!;
        var backfillRows = Rows(await ReadAllAsync(s.Db));
        Assert.All(backfillRows, r => Assert.Equal(Of(r.Sha256), r.Embedding.ToArray()));

        var live = Task.Run(async () =>
        {
            var random = new Random(11);
            for (var op = 0; op < 400; op++)
            {
                var i = random.Next(360); // ids 300–359 are new items
                var roll = random.Next(10);
                if (roll < 2) await s.Db.Store().DeleteAsync([$"m{i:D3}"]);
                else if (roll < 3) await LiveUpsertAsync(s.Db, Live(i, op), s.Active); // a worker that has not seen the new version yet
                else if (roll < 4) await LiveUpsertAsync(s.Db, Live(i, 0), s.Active, s.Building); // the original content again
                else await LiveUpsertAsync(s.Db, Live(i, op), s.Active, s.Building);
            }
        });
        var backfill = Task.Run(async () =>
        {
            var reader = new BackfillReader(s.Db.DataSource);
            for (var range = await reader.NextRangeAsync(Served, null, 20); range is not null; range = await reader.NextRangeAsync(Served, range.Last, 20))
            {
                var batch = await reader.ReadAsync(range, Served, []);
                await Task.Delay(5); // the fusion
                await Writer(s.Db.DataSource).WriteAsync(s.Building, batch.Select(b => new BackfillRow(b.MediaId, b.Modality, b.Sha256, Of(b.Sha256), [], [])).ToList());
            }
        });
        await Task.WhenAll(live, backfill);
        // The catch-up pass, once: nothing writes meanwhile, so one pass must leave nothing behind.
        var missing = await new BackfillReader(s.Db.DataSource).ReadMissingAsync(s.Building, Served, null, null, 1000, []);
        var caughtUp = await Writer(s.Db.DataSource).WriteAsync(s.Building, missing.Select(b => new BackfillRow(b.MediaId, b.Modality, b.Sha256, Of(b.Sha256), [], [])).ToList());
        Assert.Equal(missing.Count, caughtUp.Written);
        Assert.Empty(await new BackfillReader(s.Db.DataSource).ReadMissingAsync(s.Building, Served, null, null, 1000, []));

        var expected = new Dictionary<string, string>(StringComparer.Ordinal);
        await using (var cmd = s.Db.DataSource.CreateCommand("SELECT id, sha256 FROM media WHERE modality = ANY($1)"))
        {
            cmd.Parameters.Add(new() { Value = Served });
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync()) expected[reader.GetString(0)] = reader.GetString(1);
        }
        var stored = new Dictionary<string, float[]>(StringComparer.Ordinal);
        await using (var cmd = s.Db.DataSource.CreateCommand($"SELECT e.media_id, e.embedding FROM \"{s.Building.TableName}\" e JOIN media m ON m.id = e.media_id WHERE m.modality = ANY($1)"))
        {
            cmd.Parameters.Add(new() { Value = Served });
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync()) stored[reader.GetString(0)] = reader.GetFieldValue<Vector>(1).ToArray();
        }
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), stored.Keys.Order(StringComparer.Ordinal));
        Assert.All(expected, e => Assert.Equal(Of(e.Value), stored[e.Key]));
    }
}
