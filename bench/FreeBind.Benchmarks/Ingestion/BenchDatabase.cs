using FreeBind.Persistence;
using FreeBind.Persistence.Migrations;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace FreeBind.Benchmarks.Ingestion;

/// <summary>A throw-away database on the benchmark's Postgres server: every case starts empty and none sees another's rows.</summary>
internal sealed class BenchDatabase : IAsyncDisposable
{
    private readonly string _adminConnectionString;

    private BenchDatabase(string adminConnectionString, string name, NpgsqlDataSource dataSource)
    {
        _adminConnectionString = adminConnectionString;
        Name = name;
        DataSource = dataSource;
    }

    public string Name { get; }

    public NpgsqlDataSource DataSource { get; }

    public string ConnectionString => DataSource.ConnectionString;

    /// <summary>Creates an empty database next to <paramref name="server"/>'s; with <paramref name="migrate"/>, applies the migrations.</summary>
    public static async Task<BenchDatabase> CreateAsync(string server, bool migrate)
    {
        var admin = new NpgsqlConnectionStringBuilder(server) { Database = "postgres", Pooling = false };
        var name = "freebind_bench_" + Guid.NewGuid().ToString("N")[..12];
        await using (var connection = new NpgsqlConnection(admin.ConnectionString))
        {
            await connection.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await cmd.ExecuteNonQueryAsync();
        }
        // pgvector before the data source's first connection, which loads the types it can map.
        await using (var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server) { Database = name, Pooling = false }.ConnectionString))
        {
            await connection.OpenAsync();
            await using var cmd = new NpgsqlCommand("CREATE EXTENSION IF NOT EXISTS vector", connection);
            await cmd.ExecuteNonQueryAsync();
        }
        var db = new BenchDatabase(admin.ConnectionString, name,
            PersistenceExtensions.CreateDataSource(new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString));
        if (migrate) await new MigrationRunner(db.DataSource, NullLogger<MigrationRunner>.Instance).ApplyAsync();
        return db;
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(_adminConnectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", connection);
        await cmd.ExecuteNonQueryAsync();
    }
}
