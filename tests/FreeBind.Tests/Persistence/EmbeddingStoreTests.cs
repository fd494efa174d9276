using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Spaces;
using FreeBind.Persistence.Tags;
using Npgsql;

namespace FreeBind.Tests.Persistence;

public sealed class EmbeddingStoreTests(MigratedDatabase fixture) : IClassFixture<MigratedDatabase>
{
    private const int Dim = 64;
    private readonly TestDatabase _db = fixture.Db;

    private Task<SpaceVersion> NewVersionAsync(int dimension = Dim) =>
        _db.Catalog().EnsureVersionAsync("space-" + Guid.NewGuid().ToString("N")[..8], "sha256:" + Guid.NewGuid().ToString("N"), dimension, "{}");

    // xmin changes whenever a row is rewritten, so equal xmins prove a replay touched nothing.
    private async Task<Dictionary<string, string>> RowVersionsAsync(SpaceVersion v)
    {
        var rows = new Dictionary<string, string>();
        await using var cmd = _db.DataSource.CreateCommand($"""
            SELECT 'media:' || id, xmin::text FROM media WHERE id IN (SELECT media_id FROM "{v.TableName}")
            UNION ALL SELECT 'emb:' || media_id, xmin::text || updated_at::text FROM "{v.TableName}"
            UNION ALL SELECT 'atom:' || a.media_id || ':' || expert, a.xmin::text FROM atoms a JOIN "{v.TableName}" e ON e.media_id = a.media_id
            UNION ALL SELECT 'tag:' || media_id || ':' || label, xmin::text FROM media_tags WHERE space_version_id = {v.Id}
            """);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            rows[reader.GetString(0)] = reader.GetString(1);
        return rows;
    }

    private async Task<long> VocabularyAsync() =>
        await new TagVocabularyStore(_db.DataSource).UpsertAsync("acme", "vocab-" + Guid.NewGuid().ToString("N")[..8], ["dog", "cat", "car"]);

    [Fact]
    public async Task A_replayed_batch_changes_nothing()
    {
        var v = await NewVersionAsync();
        var vocab = await VocabularyAsync();
        var prefix = "replay-";
        var items = TestData.Items(50, Dim, prefix);
        items[0] = items[0] with { Tags = [new TagScore(vocab, "dog", 0.9f), new TagScore(vocab, "cat", 0.4f)] };
        var store = _db.Store();

        var first = await store.WriteBatchAsync(v, items);
        var before = await RowVersionsAsync(v);
        var replay = await store.WriteBatchAsync(v, items);
        var after = await RowVersionsAsync(v);

        Assert.Equal(new WriteResult(50, 50, 100, 2), first);
        Assert.True(replay.Unchanged, $"replay wrote {replay}");
        Assert.Equal(before, after);
        Assert.Equal(50, await store.CountAsync(v));
        Assert.Equal(items[7].Embedding.ToArray(), await store.GetEmbeddingAsync(v, prefix + "000007"));
    }

    [Fact]
    public async Task Changed_content_updates_only_what_changed()
    {
        var v = await NewVersionAsync();
        var vocab = await VocabularyAsync();
        var store = _db.Store();
        var id = "change";
        var item = TestData.Item(id, 1, Dim, [new TagScore(vocab, "dog", 0.9f), new TagScore(vocab, "cat", 0.5f)]);
        await store.WriteBatchAsync(v, [item]);

        var changed = item with { Embedding = TestData.Vector(99, Dim), Tags = [new TagScore(vocab, "dog", 0.8f)] };
        var result = await store.WriteBatchAsync(v, [changed]);

        Assert.Equal(new WriteResult(0, 1, 0, 2), result); // cat removed, dog's score updated
        Assert.Equal(changed.Embedding.ToArray(), await store.GetEmbeddingAsync(v, id));
        Assert.Equal(0.8f, await _db.ScalarAsync<float>("SELECT score FROM media_tags WHERE media_id = $1 AND label = 'dog'", id));
        Assert.Equal(1L, await _db.ScalarAsync<long>("SELECT count(*) FROM media_tags WHERE media_id = $1", id));
    }

    [Fact]
    public async Task Duplicate_ids_in_a_batch_keep_the_last()
    {
        var v = await NewVersionAsync();
        var a = TestData.Item("dup", 1, Dim);
        var b = TestData.Item("dup", 2, Dim);

        await _db.Store().WriteBatchAsync(v, [a, b]);

        Assert.Equal(b.Embedding.ToArray(), await _db.Store().GetEmbeddingAsync(v, "dup"));
    }

    [Fact]
    public async Task Bad_vectors_are_refused_with_the_media_id()
    {
        var v = await NewVersionAsync();
        var wrongWidth = TestData.Item("wide", 1, Dim + 1);
        var nan = TestData.Item("nan", 1, Dim);
        var nanVector = TestData.Vector(1, Dim);
        nanVector[3] = float.NaN;

        var ex1 = await Assert.ThrowsAsync<ArgumentException>(() => _db.Store().WriteBatchAsync(v, [wrongWidth]));
        var ex2 = await Assert.ThrowsAsync<ArgumentException>(() => _db.Store().WriteBatchAsync(v, [nan with { Embedding = nanVector }]));
        Assert.Contains("wide", ex1.Message);
        Assert.Contains("NaN", ex2.Message);
    }

    [Fact]
    public async Task Each_version_table_has_an_hnsw_cosine_index()
    {
        var v = await NewVersionAsync();

        var indexDef = await _db.ScalarAsync<string>("SELECT indexdef FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%hnsw%'", v.TableName);

        Assert.Contains("USING hnsw (embedding vector_cosine_ops)", indexDef);
        Assert.Equal($"vector({Dim})", await _db.ScalarAsync<string>(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'embedding'", v.TableName));
    }

    [Fact]
    public async Task Ensuring_a_version_is_idempotent_and_concurrent_safe()
    {
        var digest = "sha256:" + Guid.NewGuid().ToString("N");
        var versions = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => _db.Catalog().EnsureVersionAsync("concurrent", digest, Dim, "{}"))));

        Assert.Single(versions.Select(v => v.Id).Distinct());
        Assert.Equal(SpaceVersionState.Building, versions[0].State);
        await Assert.ThrowsAsync<InvalidOperationException>(() => _db.Catalog().EnsureVersionAsync("concurrent", digest, Dim * 2, "{}"));
    }

    [Fact]
    public async Task Deleting_media_removes_its_vectors_atoms_and_tags_in_every_version()
    {
        var v1 = await NewVersionAsync();
        var v2 = await NewVersionAsync(32);
        var vocab = await VocabularyAsync();
        var keep = TestData.Item("del-keep", 1, Dim);
        var gone = TestData.Item("del-gone", 2, Dim, [new TagScore(vocab, "car", 0.7f)]);
        await _db.Store().WriteBatchAsync(v1, [keep, gone]);
        await _db.Store().WriteBatchAsync(v2, [gone with { Embedding = TestData.Vector(3, 32) }]);

        var deleted = await _db.Store().DeleteAsync(["del-gone", "never-existed"]);
        var replayed = await _db.Store().DeleteAsync(["del-gone"]);

        Assert.Equal(1, deleted);
        Assert.Equal(0, replayed);
        Assert.Null(await _db.Store().GetEmbeddingAsync(v1, "del-gone"));
        Assert.Null(await _db.Store().GetEmbeddingAsync(v2, "del-gone"));
        Assert.Equal(0L, await _db.ScalarAsync<long>("SELECT count(*) FROM atoms WHERE media_id = 'del-gone'"));
        Assert.Equal(0L, await _db.ScalarAsync<long>("SELECT count(*) FROM media_tags WHERE media_id = 'del-gone'"));
        Assert.Equal(0L, await _db.ScalarAsync<long>("SELECT count(*) FROM media WHERE id = 'del-gone'"));
        Assert.NotNull(await _db.Store().GetEmbeddingAsync(v1, "del-keep"));
        Assert.Equal(2, (await _db.Store().GetAtomsAsync("del-keep")).Count);
    }

    [Fact]
    public async Task Identical_content_is_found_by_digest()
    {
        var v = await NewVersionAsync();
        var item = TestData.Item("digest-a", 5, Dim);
        await _db.Store().WriteBatchAsync(v, [item]);

        var found = await _db.Store().FindByContentAsync(v, "image", item.Media.Sha256);
        var other = await _db.Store().FindByContentAsync(v, "audio", item.Media.Sha256);

        Assert.Equal(item.Embedding.ToArray(), found);
        Assert.Null(other);
    }

    [Fact]
    public async Task Atoms_keep_each_experts_own_width()
    {
        var v = await NewVersionAsync();
        await _db.Store().WriteBatchAsync(v, [TestData.Item("atoms-w", 8, Dim)]);

        var atoms = await _db.Store().GetAtomsAsync("atoms-w");

        Assert.Equal([1024, 768], atoms.Select(a => a.Vector.Length).ToArray());
        Assert.Equal(TestData.Vector(1008, 1024), atoms[0].Vector.ToArray());
    }

    [Fact]
    public async Task Vocabularies_are_listed_per_tenant_with_their_labels()
    {
        var tenant = "tenant-" + Guid.NewGuid().ToString("N")[..8];
        var tags = new TagVocabularyStore(_db.DataSource);
        var animals = await tags.UpsertAsync(tenant, "animals", ["dog", "cat"]);
        var again = await tags.UpsertAsync(tenant, "animals", ["cat", "bird"]);
        await tags.UpsertAsync(tenant, "empty", []);
        await tags.UpsertAsync("someone-else", "animals", ["cow"]);

        var list = await tags.ListAsync(tenant);

        Assert.Equal(animals, again);
        Assert.Equal(["animals", "empty"], list.Select(v => v.Name).ToArray());
        Assert.Equal(["bird", "cat", "dog"], list[0].Labels.ToArray());
        Assert.Empty(list[1].Labels);
    }

    [Fact]
    public async Task Label_embeddings_belong_to_a_version()
    {
        var v1 = await NewVersionAsync();
        var v2 = await NewVersionAsync();
        var vocab = await VocabularyAsync();
        var tags = new TagVocabularyStore(_db.DataSource);
        await tags.WriteLabelEmbeddingsAsync(v1, vocab, [new LabelEmbedding("dog", "image", TestData.Vector(1, Dim))]);

        Assert.Single(await tags.GetLabelEmbeddingsAsync(v1, vocab, "image"));
        Assert.Empty(await tags.GetLabelEmbeddingsAsync(v2, vocab, "image"));
        Assert.Empty(await tags.GetLabelEmbeddingsAsync(v1, vocab, "audio"));
        await Assert.ThrowsAsync<PostgresException>(() =>
            tags.WriteLabelEmbeddingsAsync(v1, vocab, [new LabelEmbedding("unknown-label", "image", TestData.Vector(1, Dim))]));
    }
}
