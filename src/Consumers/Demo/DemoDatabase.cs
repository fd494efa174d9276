using FreeBind.Persistence;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace FreeBind.Consumers.Demo;

/// <summary>
/// The demo's own database, next to the configured one on the same server: <c>&lt;database&gt;_demo</c>.
/// The demo cuts its space over to another version, so it must never run in the database a worker
/// serves; and it starts from an empty database every time, so it can be run again and again.
/// </summary>
public static class DemoDatabase
{
    /// <summary>Appended to the configured database's name.</summary>
    public const string Suffix = "_demo";

    /// <summary>The demo's connection string for a configured one (empty stays empty, for the settings check to name it).</summary>
    /// <param name="connectionString">The configured Npgsql connection string.</param>
    public static string For(string connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString)) return connectionString;
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (builder.Database?.EndsWith(Suffix, StringComparison.Ordinal) == true) return connectionString;
        builder.Database = (builder.Database ?? builder.Username ?? "postgres") + Suffix;
        return builder.ConnectionString;
    }

    /// <summary>Drops the demo database (closing its connections) and creates it empty; waits for Postgres as a worker's start does.</summary>
    /// <param name="options">Persistence settings with the demo's connection string.</param>
    /// <param name="logger">Logs the waits for Postgres.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The database's name.</returns>
    public static async Task<string> RecreateAsync(PersistenceOptions options, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        var name = new NpgsqlConnectionStringBuilder(options.ConnectionString).Database!;
        var admin = new NpgsqlConnectionStringBuilder(options.ConnectionString) { Database = "postgres", Pooling = false }.ConnectionString;
        var quoted = "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
        return await DatabaseStartup.RunAsync(admin, options.StartupTimeout, logger, async ct =>
        {
            await using var connection = new NpgsqlConnection(admin);
            await connection.OpenAsync(ct);
            foreach (var sql in new[] { $"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)", $"CREATE DATABASE {quoted}" })
            {
                await using var cmd = new NpgsqlCommand(sql, connection);
                await cmd.ExecuteNonQueryAsync(ct);
            }
            return name;
        }, cancellationToken);
    }
}
