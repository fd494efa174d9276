using FreeBind.Persistence.Migrations;

namespace FreeBind.Tests.Persistence.Versions;

/// <summary>Migration 5 on a database that already holds version tables of the earlier shape.</summary>
public sealed class EmbeddingContentMigrationTests
{
    [Fact]
    public async Task Existing_version_tables_get_the_content_digest_and_its_trigger()
    {
        await using var db = await TestDatabase.CreateAsync(migrate: false);
        // The schema as migrations 1–4 left it, with a version table as SpaceCatalog created it then.
        await db.ExecuteAsync("""
            CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                                            applied_at timestamptz NOT NULL DEFAULT now())
            """);
        foreach (var m in MigrationRunner.Embedded.Where(m => m.Version < 5))
        {
            await db.ExecuteAsync(m.Sql);
            await using var record = db.DataSource.CreateCommand("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)");
            record.Parameters.Add(new() { Value = m.Version });
            record.Parameters.Add(new() { Value = m.Name });
            record.Parameters.Add(new() { Value = m.Checksum });
            await record.ExecuteNonQueryAsync();
        }
        await db.ExecuteAsync("""
            INSERT INTO spaces (name) VALUES ('old');
            INSERT INTO space_versions (space, digest, dimension, manifest) VALUES ('old', 'sha256:old', 3, '{}');
            INSERT INTO media (id, tenant, modality, source, sha256) VALUES ('a', 't', 'image', 'inline', repeat('a', 64)), ('b', 't', 'image', 'inline', repeat('b', 64));
            CREATE TABLE embeddings_v1 (media_id text PRIMARY KEY REFERENCES media (id) ON DELETE CASCADE,
                                        embedding vector(3) NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
            INSERT INTO embeddings_v1 (media_id, embedding) VALUES ('a', '[1,0,0]');
            """);

        var applied = await db.Migrator().ApplyAsync();
        await db.ExecuteAsync("INSERT INTO embeddings_v1 (media_id, embedding) VALUES ('b', '[0,1,0]')");
        await db.ExecuteAsync("UPDATE media SET sha256 = repeat('c', 64) WHERE id = 'a'");

        Assert.Equal(MigrationRunner.Embedded.Where(m => m.Version >= 5).Select(m => m.Version), applied);
        Assert.True(await db.ScalarAsync<bool>("SELECT content_sha256 IS NULL FROM embeddings_v1 WHERE media_id = 'a'"), "rows from before keep an unknown digest");
        Assert.Equal(new string('b', 64), await db.ScalarAsync<string>("SELECT content_sha256 FROM embeddings_v1 WHERE media_id = 'b'"));
        await db.ExecuteAsync("UPDATE embeddings_v1 SET embedding = '[0,0,1]' WHERE media_id = 'a'");
        Assert.Equal(new string('c', 64), await db.ScalarAsync<string>("SELECT content_sha256 FROM embeddings_v1 WHERE media_id = 'a'"));
    }
}
