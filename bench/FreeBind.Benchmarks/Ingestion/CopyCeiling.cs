using System.Diagnostics;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging.Abstractions;
using NpgsqlTypes;

namespace FreeBind.Benchmarks.Ingestion;

/// <summary>
/// (a) The ceiling: the vectors the worker wrote, loaded with raw binary COPY (Npgsql
/// <c>BeginBinaryImport</c>) in one transaction into an empty table in a fresh database. Rows per
/// second from the start of the transaction to its commit (the connection is already open).
/// </summary>
internal static class CopyCeiling
{
    /// <summary>
    /// The same vectors into a table of the same shape as a space version's (<c>media_id text PRIMARY
    /// KEY, embedding vector(dim), updated_at</c>), with its HNSW cosine index or, with
    /// <paramref name="index"/> false, without (bulk load first, index after: the fastest a load can be).
    /// No media rows, no foreign key.
    /// </summary>
    public static async Task<double> EmbeddingsOnlyAsync(BenchContext ctx, WrittenRows rows, bool index)
    {
        await using var db = await BenchDatabase.CreateAsync(ctx.Postgres, migrate: false);
        await db.ExecuteAsync($"""
            CREATE TABLE ceiling (
                media_id   text        PRIMARY KEY,
                embedding  vector({rows.Dimension}) NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now());
            {(index ? "CREATE INDEX ceiling_hnsw ON ceiling USING hnsw (embedding vector_cosine_ops);" : "")}
            """);
        await using var connection = await db.DataSource.OpenConnectionAsync();
        var watch = Stopwatch.StartNew();
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await using (var writer = await connection.BeginBinaryImportAsync("COPY ceiling (media_id, embedding) FROM STDIN (FORMAT BINARY)"))
            {
                foreach (var m in rows.Media)
                {
                    await writer.StartRowAsync();
                    await writer.WriteAsync(m.Id, NpgsqlDbType.Text);
                    await writer.WriteAsync(m.Embedding, "vector");
                }
                await writer.CompleteAsync();
            }
            await tx.CommitAsync();
        }
        var seconds = watch.Elapsed.TotalSeconds;
        var count = await db.ScalarAsync<long>("SELECT count(*) FROM ceiling");
        if (count != rows.Media.Count) throw new InvalidOperationException($"ceiling: {count} rows, expected {rows.Media.Count}");
        return rows.Media.Count / seconds;
    }

    /// <summary>
    /// Parity with what the worker writes: the migrated schema and the space version's own table
    /// (HNSW index, foreign key to media), and the same rows — media, embeddings, atoms — each table
    /// by binary COPY straight into it, one transaction.
    /// </summary>
    public static async Task<double> ParityAsync(BenchContext ctx, WrittenRows rows)
    {
        await using var db = await BenchDatabase.CreateAsync(ctx.Postgres, migrate: true);
        var version = await new SpaceCatalog(db.DataSource, NullLogger<SpaceCatalog>.Instance)
            .EnsureVersionAsync(rows.Space, rows.Digest, rows.Dimension, rows.Manifest);
        await using var connection = await db.DataSource.OpenConnectionAsync();
        var watch = Stopwatch.StartNew();
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await using (var writer = await connection.BeginBinaryImportAsync(
                "COPY media (id, tenant, modality, source, sha256, metadata) FROM STDIN (FORMAT BINARY)"))
            {
                foreach (var m in rows.Media)
                {
                    await writer.StartRowAsync();
                    await writer.WriteAsync(m.Id, NpgsqlDbType.Text);
                    await writer.WriteAsync(m.Tenant, NpgsqlDbType.Text);
                    await writer.WriteAsync(m.Modality, NpgsqlDbType.Text);
                    await writer.WriteAsync(m.Source, NpgsqlDbType.Text);
                    await writer.WriteAsync(m.Sha256, NpgsqlDbType.Text);
                    await writer.WriteAsync(m.Metadata, NpgsqlDbType.Jsonb);
                }
                await writer.CompleteAsync();
            }
            await using (var writer = await connection.BeginBinaryImportAsync(
                $"COPY \"{version.TableName}\" (media_id, embedding) FROM STDIN (FORMAT BINARY)"))
            {
                foreach (var m in rows.Media)
                {
                    await writer.StartRowAsync();
                    await writer.WriteAsync(m.Id, NpgsqlDbType.Text);
                    await writer.WriteAsync(m.Embedding, "vector");
                }
                await writer.CompleteAsync();
            }
            await using (var writer = await connection.BeginBinaryImportAsync(
                "COPY atoms (media_id, expert, model_digest, embedding) FROM STDIN (FORMAT BINARY)"))
            {
                foreach (var a in rows.Atoms)
                {
                    await writer.StartRowAsync();
                    await writer.WriteAsync(a.MediaId, NpgsqlDbType.Text);
                    await writer.WriteAsync(a.Expert, NpgsqlDbType.Text);
                    await writer.WriteAsync(a.ModelDigest, NpgsqlDbType.Text);
                    await writer.WriteAsync(a.Embedding, "vector");
                }
                await writer.CompleteAsync();
            }
            await tx.CommitAsync();
        }
        return rows.Media.Count / watch.Elapsed.TotalSeconds;
    }
}
