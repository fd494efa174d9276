using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace FreeBind.Persistence.Spaces;

/// <summary>Registers space versions, creates their embedding tables and moves them through their states.</summary>
public sealed class SpaceCatalog(NpgsqlDataSource dataSource, ILogger<SpaceCatalog> logger)
{
    private const string Columns = "id, space, digest, dimension, state, table_name";

    /// <summary>
    /// Returns the version of <paramref name="space"/> with <paramref name="digest"/>, registering it
    /// (state building) and creating its embedding table with an HNSW cosine index when new.
    /// Safe to call concurrently and repeatedly.
    /// </summary>
    /// <param name="space">Space name.</param>
    /// <param name="digest">Content digest of the manifest.</param>
    /// <param name="dimension">Width of the fused vectors (1–2000, the HNSW limit).</param>
    /// <param name="manifestJson">The manifest, stored as jsonb for reference.</param>
    /// <param name="createIndex">False for a bulk backfill that builds the index afterwards with <see cref="EnsureIndexAsync"/> (faster).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<SpaceVersion> EnsureVersionAsync(
        string space, string digest, int dimension, string manifestJson, bool createIndex = true, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(space);
        ArgumentException.ThrowIfNullOrWhiteSpace(digest);
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(dimension, 2000);

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        // Serialises concurrent creators of the same version (CREATE TABLE IF NOT EXISTS races otherwise).
        await using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext('freebind.space:' || $1 || '@' || $2))", connection, tx))
        {
            lockCmd.Parameters.Add(new() { Value = space });
            lockCmd.Parameters.Add(new() { Value = digest });
            await lockCmd.ExecuteNonQueryAsync(cancellationToken);
        }
        SpaceVersion version;
        await using (var cmd = new NpgsqlCommand($"""
            INSERT INTO spaces (name) VALUES (@space) ON CONFLICT DO NOTHING;
            INSERT INTO space_versions (space, digest, dimension, manifest) VALUES (@space, @digest, @dimension, @manifest)
                ON CONFLICT (space, digest) DO NOTHING;
            """, connection, tx))
        {
            cmd.Parameters.AddWithValue("space", space);
            cmd.Parameters.AddWithValue("digest", digest);
            cmd.Parameters.AddWithValue("dimension", dimension);
            cmd.Parameters.AddWithValue("manifest", NpgsqlDbType.Jsonb, manifestJson);
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
        version = await FindAsync(connection, tx, "space = $1 AND digest = $2", [space, digest], cancellationToken)
            ?? throw new InvalidOperationException($"space version {space}@{digest} vanished");
        if (version.Dimension != dimension)
            throw new InvalidOperationException(
                $"space version {space}@{digest} is stored with dimension {version.Dimension}, not {dimension}");

        var table = Quote(version.TableName);
        var ddl = $"""
            CREATE TABLE IF NOT EXISTS {table} (
                media_id   text        PRIMARY KEY REFERENCES media (id) ON DELETE CASCADE,
                embedding  vector({dimension}) NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now())
            """;
        await using (var cmd = new NpgsqlCommand(ddl, connection, tx))
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        if (createIndex)
            await using (var cmd = new NpgsqlCommand(IndexDdl(version), connection, tx))
                await cmd.ExecuteNonQueryAsync(cancellationToken);
        await tx.CommitAsync(cancellationToken);
        Log.SpaceVersionEnsured(logger, space, digest, dimension, version.TableName);
        return version;
    }

    /// <summary>Creates the HNSW cosine index of a version's table if it is missing (after a bulk load).</summary>
    /// <param name="version">The version.</param>
    /// <param name="cancellationToken">Cancels the build.</param>
    public async Task EnsureIndexAsync(SpaceVersion version, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand(IndexDdl(version));
        await cmd.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Makes <paramref name="digest"/> the active version of <paramref name="space"/> and retires the
    /// previous one, atomically: a query sees either the old or the new version, never both.
    /// </summary>
    /// <param name="space">Space name.</param>
    /// <param name="digest">The version to activate; must exist.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<SpaceVersion> ActivateAsync(string space, string digest, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        await using (var cmd = new NpgsqlCommand("""
            SELECT 1 FROM spaces WHERE name = @space FOR UPDATE;
            UPDATE space_versions SET state = 'retired', retired_at = now()
                WHERE space = @space AND state = 'active' AND digest <> @digest
                  AND EXISTS (SELECT 1 FROM space_versions WHERE space = @space AND digest = @digest);
            UPDATE space_versions SET state = 'active', activated_at = now(), retired_at = NULL
                WHERE space = @space AND digest = @digest AND state <> 'active';
            """, connection, tx))
        {
            cmd.Parameters.AddWithValue("space", space);
            cmd.Parameters.AddWithValue("digest", digest);
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
        var version = await FindAsync(connection, tx, "space = $1 AND digest = $2", [space, digest], cancellationToken)
            ?? throw new InvalidOperationException($"space version {space}@{digest} does not exist");
        await tx.CommitAsync(cancellationToken);
        Log.SpaceVersionActivated(logger, space, digest);
        return version;
    }

    /// <summary>The active version of <paramref name="space"/>, or null when it has none.</summary>
    /// <param name="space">Space name.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<SpaceVersion?> GetActiveAsync(string space, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await FindAsync(connection, null, "space = $1 AND state = 'active'", [space], cancellationToken);
    }

    /// <summary>A version by space and digest, or null.</summary>
    /// <param name="space">Space name.</param>
    /// <param name="digest">Manifest digest.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<SpaceVersion?> GetAsync(string space, string digest, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await FindAsync(connection, null, "space = $1 AND digest = $2", [space, digest], cancellationToken);
    }

    private static string IndexDdl(SpaceVersion version) =>
        $"CREATE INDEX IF NOT EXISTS {Quote(version.TableName + "_hnsw")} ON {Quote(version.TableName)} USING hnsw (embedding vector_cosine_ops)";

    // Table names come from the database (embeddings_v{id}), never from input; quoting is belt and braces.
    internal static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static async Task<SpaceVersion?> FindAsync(
        NpgsqlConnection connection, NpgsqlTransaction? tx, string where, object[] args, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"SELECT {Columns} FROM space_versions WHERE {where}", connection, tx);
        foreach (var arg in args)
            cmd.Parameters.Add(new() { Value = arg });
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct))
            return null;
        return new SpaceVersion(
            reader.GetInt32(0), reader.GetString(1), reader.GetString(2), reader.GetInt32(3),
            Enum.Parse<SpaceVersionState>(reader.GetString(4), ignoreCase: true), reader.GetString(5));
    }
}
