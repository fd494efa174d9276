using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace FreeBind.Persistence.Spaces;

/// <summary>
/// Registers space versions with their embedding tables and answers what exists: the active version,
/// the write targets of live ingestion, the versions of a space with their timestamps. The state
/// changes after registration (ready, cut-over, rollback, cancel, drop) are <see cref="SpaceVersionLifecycle"/>'s.
/// </summary>
public sealed class SpaceCatalog(NpgsqlDataSource dataSource, ILogger<SpaceCatalog> logger)
{
    /// <summary>
    /// Returns the version of <paramref name="space"/> with <paramref name="digest"/>, registering it
    /// (state building) and creating its embedding table when new. A version whose table was dropped
    /// (dropped, cancelled, failed) is registered again: building, with an empty table. Safe to call
    /// concurrently and repeatedly.
    /// </summary>
    /// <param name="space">Space name.</param>
    /// <param name="digest">Content digest of the manifest.</param>
    /// <param name="dimension">Width of the fused vectors (1–2000, the HNSW limit).</param>
    /// <param name="manifestJson">The manifest, stored as jsonb for reference.</param>
    /// <param name="createIndex">
    /// Whether a table created by this call gets its HNSW index at once (rows indexed as they come).
    /// False for a backfill: load into the unindexed table, then <see cref="SpaceIndexBuilder.BuildAsync"/>
    /// (faster, docs/benchmarks.md). An existing table is left as it is.
    /// </param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="InvalidOperationException">The version exists with another dimension.</exception>
    public async Task<SpaceVersion> EnsureVersionAsync(
        string space, string digest, int dimension, string manifestJson, bool createIndex = true, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(space);
        ArgumentException.ThrowIfNullOrWhiteSpace(digest);
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(dimension, 2000);

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        await using (var cmd = new NpgsqlCommand("INSERT INTO spaces (name) VALUES ($1) ON CONFLICT DO NOTHING", connection, tx))
        {
            cmd.Parameters.Add(new() { Value = space });
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
        // Serialises creators of the same version (CREATE TABLE IF NOT EXISTS races otherwise) and
        // orders this call with the lifecycle's changes (a cancel cannot interleave with a revival).
        await SpaceVersionRows.LockSpaceAsync(connection, tx, space, cancellationToken);
        await using (var cmd = new NpgsqlCommand("""
            INSERT INTO space_versions (space, digest, dimension, manifest) VALUES (@space, @digest, @dimension, @manifest)
                ON CONFLICT (space, digest) DO NOTHING
            """, connection, tx))
        {
            cmd.Parameters.AddWithValue("space", space);
            cmd.Parameters.AddWithValue("digest", digest);
            cmd.Parameters.AddWithValue("dimension", dimension);
            cmd.Parameters.AddWithValue("manifest", NpgsqlDbType.Jsonb, manifestJson);
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
        var version = await SpaceVersionRows.FindAsync(connection, tx, "space = $1 AND digest = $2", [space, digest], cancellationToken)
            ?? throw new InvalidOperationException($"space version {space}@{digest} vanished");
        if (version.Dimension != dimension)
            throw new InvalidOperationException(
                $"space version {space}@{digest} is stored with dimension {version.Dimension}, not {dimension}");
        if (!version.HasTable)
            version = await ReviveAsync(connection, tx, version, manifestJson, cancellationToken);

        var table = SpaceVersionRows.Quote(version.TableName);
        bool created;
        await using (var cmd = new NpgsqlCommand("SELECT to_regclass($1) IS NULL", connection, tx))
        {
            cmd.Parameters.Add(new() { Value = table });
            created = (bool)(await cmd.ExecuteScalarAsync(cancellationToken))!;
        }
        if (created)
        {
            // content_sha256: the digest of the content the vector was computed from, set by the
            // trigger (migration 5), so a row left behind by a content change is found and replaced.
            await using (var cmd = new NpgsqlCommand($"""
                CREATE TABLE {table} (
                    media_id       text        PRIMARY KEY REFERENCES media (id) ON DELETE CASCADE,
                    embedding      vector({dimension}) NOT NULL,
                    updated_at     timestamptz NOT NULL DEFAULT now(),
                    content_sha256 text);
                CREATE TRIGGER embedding_content BEFORE INSERT OR UPDATE OF embedding ON {table}
                    FOR EACH ROW EXECUTE FUNCTION freebind_embedding_content();
                """, connection, tx))
                await cmd.ExecuteNonQueryAsync(cancellationToken);
            if (createIndex)
                await using (var cmd = new NpgsqlCommand(SpaceIndexBuilder.IndexDdl(version, concurrently: false), connection, tx))
                    await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
        await tx.CommitAsync(cancellationToken);
        Log.SpaceVersionEnsured(logger, space, digest, dimension, version.TableName);
        return version;
    }

    /// <summary>
    /// Registers (or returns) a version a re-embedding will backfill: like <see cref="EnsureVersionAsync"/>,
    /// but a new table gets no index, because bulk loading then building the index is several times
    /// faster than indexing rows as they come (docs/benchmarks.md, index build). Build it with
    /// <see cref="SpaceIndexBuilder.BuildAsync"/> when the backfill is done; a version is marked ready
    /// only with a valid index.
    /// </summary>
    /// <param name="space">Space name.</param>
    /// <param name="digest">Content digest of the manifest.</param>
    /// <param name="dimension">Width of the fused vectors (1–2000).</param>
    /// <param name="manifestJson">The manifest (canonical JSON).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="InvalidOperationException">The version exists with another dimension.</exception>
    public Task<SpaceVersion> RegisterForBackfillAsync(string space, string digest, int dimension, string manifestJson, CancellationToken cancellationToken = default) =>
        EnsureVersionAsync(space, digest, dimension, manifestJson, createIndex: false, cancellationToken);

    /// <summary>
    /// Creates the HNSW cosine index of a version's table if it is missing, in one transaction. It
    /// blocks writes to that table while it runs: fine for small tables and tests; a backfilled
    /// version under live writes uses <see cref="SpaceIndexBuilder.BuildAsync"/> instead.
    /// </summary>
    /// <param name="version">The version.</param>
    /// <param name="cancellationToken">Cancels the build.</param>
    public async Task EnsureIndexAsync(SpaceVersion version, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand(SpaceIndexBuilder.IndexDdl(version, concurrently: false));
        cmd.CommandTimeout = 0;
        await cmd.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Makes a version the active one of a space that has none yet (the first version of a space, when
    /// there is nothing to verify it against). Once a space serves a version, a new one goes live only
    /// through <see cref="SpaceVersionLifecycle.CutOverAsync"/> after its verify gate. Idempotent.
    /// </summary>
    /// <param name="space">Space name.</param>
    /// <param name="digest">The version to activate: building or ready.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="SpaceVersionException">Unknown space or version, the version has ended, or another version is active.</exception>
    public async Task<SpaceVersion> ActivateAsync(string space, string digest, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        if (!await SpaceVersionRows.LockSpaceAsync(connection, tx, space, cancellationToken))
            throw new SpaceVersionException(SpaceVersionRefusal.UnknownSpace, $"space \"{space}\" has no registered version");
        var version = await SpaceVersionRows.FindAsync(connection, tx, "space = $1 AND digest = $2", [space, digest], cancellationToken)
            ?? throw new SpaceVersionException(SpaceVersionRefusal.UnknownVersion, $"space \"{space}\" has no version {digest}");
        if (version.State == SpaceVersionState.Active)
            return version;
        if (!version.HasTable)
            throw SpaceVersionLifecycle.EndedError(version);
        if (version.State is not (SpaceVersionState.Building or SpaceVersionState.Ready))
            throw new SpaceVersionException(SpaceVersionRefusal.WrongState,
                $"version {version.Key} is {Name(version.State)}; only a building or ready version can become the first active one");
        if (await SpaceVersionRows.FindAsync(connection, tx, "space = $1 AND state = 'active'", [space], cancellationToken) is { } active)
            throw new SpaceVersionException(SpaceVersionRefusal.AnotherActive,
                $"space \"{space}\" already serves version {active.Digest}; a new version goes live by a cut-over after its verify gate (freebind reembed cutover)");
        await using (var cmd = new NpgsqlCommand(
            "UPDATE space_versions SET state = 'active', activated_at = now() WHERE id = $1", connection, tx))
        {
            cmd.Parameters.Add(new() { Value = version.Id });
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
        await tx.CommitAsync(cancellationToken);
        Log.SpaceVersionActivated(logger, space, digest);
        return version with { State = SpaceVersionState.Active };
    }

    /// <summary>The active version of <paramref name="space"/>, or null when it has none.</summary>
    /// <param name="space">Space name.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<SpaceVersion?> GetActiveAsync(string space, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await SpaceVersionRows.FindAsync(connection, null, "space = $1 AND state = 'active'", [space], cancellationToken);
    }

    /// <summary>A version by space and digest, or null.</summary>
    /// <param name="space">Space name.</param>
    /// <param name="digest">Manifest digest.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<SpaceVersion?> GetAsync(string space, string digest, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await SpaceVersionRows.FindAsync(connection, null, "space = $1 AND digest = $2", [space, digest], cancellationToken);
    }

    /// <summary>A version by id (as run messages carry it), or null.</summary>
    /// <param name="id">The version id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<SpaceVersion?> GetAsync(int id, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await SpaceVersionRows.FindAsync(connection, null, "id = $1", [id], cancellationToken);
    }

    /// <summary>The manifest a version was registered with (canonical JSON), or null for an unknown id.</summary>
    /// <param name="id">The version id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<string?> GetManifestAsync(int id, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand("SELECT manifest::text FROM space_versions WHERE id = $1");
        cmd.Parameters.Add(new() { Value = id });
        return await cmd.ExecuteScalarAsync(cancellationToken) as string;
    }

    /// <summary>Every version of a space, oldest first, with its state and lifecycle timestamps.</summary>
    /// <param name="space">Space name.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="SpaceVersionException">The space has never been registered.</exception>
    public async Task<IReadOnlyList<SpaceVersionDetails>> ListAsync(string space, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand($"SELECT {SpaceVersionRows.DetailColumns} FROM space_versions WHERE space = $1 ORDER BY id");
        cmd.Parameters.Add(new() { Value = space });
        var list = new List<SpaceVersionDetails>();
        await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken))
            while (await reader.ReadAsync(cancellationToken))
                list.Add(SpaceVersionRows.ReadDetails(reader));
        return list.Count > 0
            ? list
            : throw new SpaceVersionException(SpaceVersionRefusal.UnknownSpace, $"space \"{space}\" has no registered version");
    }

    /// <summary>The Postgres NOTIFY channel on which every change of a space's versions is announced (payload: the space name; migration 0002).</summary>
    public const string ChangesChannel = "freebind_space_versions";

    /// <summary>
    /// The versions live ingestion must write for <paramref name="space"/>: those building, ready,
    /// active, or retired and still retained (so a rollback to them is exact), oldest first, each with
    /// its manifest. Empty for an unknown space. A version leaves this set when its table is about to
    /// go; a write that still reaches a vanished table fails with SQLSTATE 42P01 (reload the targets).
    /// </summary>
    /// <param name="space">Space name.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<IReadOnlyList<SpaceWriteTarget>> GetWriteTargetsAsync(string space, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand($"""
            SELECT {SpaceVersionRows.Columns}, manifest::text FROM space_versions
            WHERE space = $1 AND (state IN ('building', 'ready', 'active') OR (state = 'retired' AND retain_until > now()))
            ORDER BY id
            """);
        cmd.Parameters.Add(new() { Value = space });
        var list = new List<SpaceWriteTarget>();
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            list.Add(new SpaceWriteTarget(SpaceVersionRows.Read(reader), reader.GetString(6)));
        return list;
    }

    // Table names come from the database (embeddings_v{id}), never from input; quoting is belt and braces.
    internal static string Quote(string identifier) => SpaceVersionRows.Quote(identifier);

    internal static string Name(SpaceVersionState state) => state.ToString().ToLowerInvariant();

    private static async Task<SpaceVersion> ReviveAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, SpaceVersion version, string manifestJson, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("""
            UPDATE space_versions SET state = 'building', manifest = $2, created_at = now(), ready_at = NULL, activated_at = NULL,
                retired_at = NULL, retain_until = NULL, ended_at = NULL, end_reason = NULL, previous_id = NULL
            WHERE id = $1
            """, connection, tx);
        cmd.Parameters.Add(new() { Value = version.Id });
        cmd.Parameters.Add(new() { Value = manifestJson, NpgsqlDbType = NpgsqlDbType.Jsonb });
        await cmd.ExecuteNonQueryAsync(ct);
        return version with { State = SpaceVersionState.Building };
    }
}
