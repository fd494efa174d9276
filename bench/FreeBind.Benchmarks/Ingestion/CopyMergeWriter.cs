using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Spaces;
using Npgsql;
using NpgsqlTypes;
using Pgvector;

namespace FreeBind.Benchmarks.Ingestion;

/// <summary>
/// A second way to write the worker's rows, kept here to be measured against the store's
/// (<see cref="EmbeddingStore"/>, arrays expanded with <c>unnest</c>): binary COPY into temporary
/// staging tables, then one INSERT … SELECT … ON CONFLICT per table, in one transaction. Same
/// idempotent merges (media, embeddings, atoms); tags are left out (the benchmark rows have none).
/// </summary>
internal sealed class CopyMergeWriter(NpgsqlDataSource dataSource)
{
    private const string CreateStaging = """
        CREATE TEMP TABLE stage_media (id text, tenant text, modality text, source text, sha256 text, metadata jsonb) ON COMMIT DROP;
        CREATE TEMP TABLE stage_embeddings (media_id text, embedding vector) ON COMMIT DROP;
        CREATE TEMP TABLE stage_atoms (media_id text, expert text, model_digest text, embedding vector) ON COMMIT DROP;
        """;

    public async Task WriteAsync(SpaceVersion version, IReadOnlyList<EmbeddedItem> batch)
    {
        var items = batch.GroupBy(i => i.Media.Id).Select(g => g.Last()).OrderBy(i => i.Media.Id, StringComparer.Ordinal).ToList();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await using (var create = new NpgsqlCommand(CreateStaging, connection, tx))
            await create.ExecuteNonQueryAsync();

        await using (var writer = await connection.BeginBinaryImportAsync("COPY stage_media (id, tenant, modality, source, sha256, metadata) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var m in items.Select(i => i.Media))
            {
                await writer.StartRowAsync();
                await writer.WriteAsync(m.Id, NpgsqlDbType.Text);
                await writer.WriteAsync(m.Tenant, NpgsqlDbType.Text);
                await writer.WriteAsync(m.Modality, NpgsqlDbType.Text);
                await writer.WriteAsync(m.Source, NpgsqlDbType.Text);
                await writer.WriteAsync(m.Sha256, NpgsqlDbType.Text);
                await writer.WriteAsync(m.MetadataJson, NpgsqlDbType.Jsonb);
            }
            await writer.CompleteAsync();
        }
        await using (var writer = await connection.BeginBinaryImportAsync("COPY stage_embeddings (media_id, embedding) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var item in items)
            {
                await writer.StartRowAsync();
                await writer.WriteAsync(item.Media.Id, NpgsqlDbType.Text);
                await writer.WriteAsync(new Vector(item.Embedding), "vector");
            }
            await writer.CompleteAsync();
        }
        await using (var writer = await connection.BeginBinaryImportAsync("COPY stage_atoms (media_id, expert, model_digest, embedding) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var item in items)
                foreach (var atom in item.Atoms)
                {
                    await writer.StartRowAsync();
                    await writer.WriteAsync(item.Media.Id, NpgsqlDbType.Text);
                    await writer.WriteAsync(atom.Expert, NpgsqlDbType.Text);
                    await writer.WriteAsync(atom.ModelDigest, NpgsqlDbType.Text);
                    await writer.WriteAsync(new Vector(atom.Vector), "vector");
                }
            await writer.CompleteAsync();
        }
        await using (var merge = new NpgsqlCommand($"""
            INSERT INTO media AS t (id, tenant, modality, source, sha256, metadata)
            SELECT id, tenant, modality, source, sha256, metadata FROM stage_media
            ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, modality = excluded.modality, source = excluded.source,
                sha256 = excluded.sha256, metadata = excluded.metadata, updated_at = now()
            WHERE (t.tenant, t.modality, t.source, t.sha256, t.metadata)
                IS DISTINCT FROM (excluded.tenant, excluded.modality, excluded.source, excluded.sha256, excluded.metadata);
            INSERT INTO "{version.TableName}" AS t (media_id, embedding) SELECT media_id, embedding FROM stage_embeddings
            ON CONFLICT (media_id) DO UPDATE SET embedding = excluded.embedding, updated_at = now()
            WHERE t.embedding IS DISTINCT FROM excluded.embedding;
            INSERT INTO atoms AS t (media_id, expert, model_digest, embedding) SELECT media_id, expert, model_digest, embedding FROM stage_atoms
            ON CONFLICT (media_id, expert, model_digest) DO UPDATE SET embedding = excluded.embedding
            WHERE t.embedding IS DISTINCT FROM excluded.embedding;
            """, connection, tx))
            await merge.ExecuteNonQueryAsync();
        await tx.CommitAsync();
    }
}
