using System.Diagnostics;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace FreeBind.Persistence.Migrations;

/// <summary>One versioned SQL script embedded in this assembly (<c>Migrations/NNNN_name.sql</c>).</summary>
/// <param name="Version">The number before the first underscore.</param>
/// <param name="Name">The rest of the file name.</param>
/// <param name="Sql">The script text.</param>
/// <param name="Checksum">SHA-256 of the script, so an edited, already applied script is detected.</param>
public sealed record Migration(int Version, string Name, string Sql, string Checksum);

/// <summary>
/// Applies the embedded migrations in order. All pending scripts run in one transaction under a
/// Postgres advisory lock, so concurrent workers starting together apply each script exactly once
/// and a failing script leaves the schema as it was.
/// </summary>
public sealed class MigrationRunner(NpgsqlDataSource dataSource, ILogger<MigrationRunner> logger)
{
    private const string ResourcePrefix = "FreeBind.Persistence.Migrations.";

    // Arbitrary constant shared by every FreeBind process ("FBMIGRAT").
    private const long AdvisoryLockKey = 0x46424D4947524154;

    /// <summary>All embedded migrations, ordered by version.</summary>
    public static IReadOnlyList<Migration> Embedded { get; } = LoadEmbedded();

    /// <summary>Applies pending migrations and returns the versions applied by this call.</summary>
    /// <param name="cancellationToken">Cancels the wait for the lock or a running script.</param>
    public async Task<IReadOnlyList<int>> ApplyAsync(CancellationToken cancellationToken = default)
    {
        var applied = new List<int>();
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            await using var tx = await connection.BeginTransactionAsync(cancellationToken);
            await ExecuteAsync(connection, tx, $"SELECT pg_advisory_xact_lock({AdvisoryLockKey})", cancellationToken);
            await ExecuteAsync(connection, tx, """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer     PRIMARY KEY,
                    name       text        NOT NULL,
                    checksum   text        NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """, cancellationToken);

            var done = new Dictionary<int, string>();
            await using (var cmd = new NpgsqlCommand("SELECT version, checksum FROM schema_migrations", connection, tx))
            await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken))
                while (await reader.ReadAsync(cancellationToken))
                    done[reader.GetInt32(0)] = reader.GetString(1);

            foreach (var migration in Embedded)
            {
                if (done.TryGetValue(migration.Version, out var checksum))
                {
                    if (checksum != migration.Checksum)
                        throw new InvalidOperationException(
                            $"migration {migration.Version} ({migration.Name}) was changed after it was applied; add a new migration instead");
                    continue;
                }
                Log.ApplyingMigration(logger, migration.Version, migration.Name);
                await ExecuteAsync(connection, tx, migration.Sql, cancellationToken);
                await using var record = new NpgsqlCommand(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", connection, tx);
                record.Parameters.Add(new() { Value = migration.Version });
                record.Parameters.Add(new() { Value = migration.Name });
                record.Parameters.Add(new() { Value = migration.Checksum });
                await record.ExecuteNonQueryAsync(cancellationToken);
                applied.Add(migration.Version);
            }
            await tx.CommitAsync(cancellationToken);

            // Types created by a migration (the vector extension) are unknown to connections that
            // loaded the catalogue before it; reload so UseVector() mappings resolve.
            if (applied.Count > 0)
                await connection.ReloadTypesAsync(cancellationToken);
        }
        Log.SchemaReady(logger, Embedded[^1].Version, applied.Count);
        return applied;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, connection, tx);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private static List<Migration> LoadEmbedded()
    {
        var assembly = typeof(MigrationRunner).Assembly;
        var list = new List<Migration>();
        foreach (var resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(ResourcePrefix, StringComparison.Ordinal) || !resource.EndsWith(".sql", StringComparison.Ordinal))
                continue;
            var file = resource[ResourcePrefix.Length..^".sql".Length];
            var underscore = file.IndexOf('_', StringComparison.Ordinal);
            if (underscore <= 0 || !int.TryParse(file.AsSpan(0, underscore), out var version))
                throw new InvalidOperationException($"migration resource '{resource}' is not named NNNN_name.sql");
            // Normalised line ends: a CRLF checkout must not look like an edited migration.
            var sql = ReadResource(assembly, resource).Replace("\r\n", "\n", StringComparison.Ordinal);
            var checksum = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sql)));
            list.Add(new Migration(version, file[(underscore + 1)..], sql, checksum));
        }
        list.Sort((a, b) => a.Version.CompareTo(b.Version));
        for (var i = 1; i < list.Count; i++)
            if (list[i].Version == list[i - 1].Version)
                throw new InvalidOperationException($"two migrations share version {list[i].Version}");
        Debug.Assert(list.Count > 0, "no migrations embedded");
        return list;
    }

    private static string ReadResource(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"missing embedded resource {name}");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
