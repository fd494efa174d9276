using FreeBind.Persistence;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Migrations;
using FreeBind.Persistence.Spaces;
using FreeBind.Tests.Services;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace FreeBind.Tests.Persistence;

/// <summary>A throw-away database on the test cluster, so test classes never see each other's rows.</summary>
public sealed class TestDatabase : IAsyncDisposable
{
    private readonly string _adminConnectionString;

    private TestDatabase(string adminConnectionString, string name, NpgsqlDataSource dataSource)
    {
        _adminConnectionString = adminConnectionString;
        Name = name;
        DataSource = dataSource;
    }

    public string Name { get; }

    public NpgsqlDataSource DataSource { get; }

    public string ConnectionString => DataSource.ConnectionString;

    /// <summary>Creates an empty database; with <paramref name="migrate"/>, also applies the migrations.</summary>
    public static async Task<TestDatabase> CreateAsync(bool migrate = true)
    {
        var admin = new NpgsqlConnectionStringBuilder(ServiceEnvironment.Postgres) { Database = "postgres", Pooling = false };
        var name = "freebind_test_" + Guid.NewGuid().ToString("N")[..12];
        try
        {
            await using var connection = new NpgsqlConnection(admin.ConnectionString);
            await connection.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await cmd.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException ex)
        {
            throw new InvalidOperationException($"PostgreSQL at '{admin.Host}:{admin.Port}' is unreachable ({ex.Message}); {ServiceEnvironment.StartHint}", ex);
        }
        var dataSource = PersistenceExtensions.CreateDataSource(
            new NpgsqlConnectionStringBuilder(ServiceEnvironment.Postgres) { Database = name }.ConnectionString);
        var db = new TestDatabase(admin.ConnectionString, name, dataSource);
        if (migrate)
            await db.Migrator().ApplyAsync();
        return db;
    }

    public MigrationRunner Migrator() => new(DataSource, NullLogger<MigrationRunner>.Instance);

    public SpaceCatalog Catalog() => new(DataSource, NullLogger<SpaceCatalog>.Instance);

    public EmbeddingStore Store() => new(DataSource, NullLogger<EmbeddingStore>.Instance);

    public async Task<T> ScalarAsync<T>(string sql, params object[] args)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        foreach (var arg in args)
            cmd.Parameters.Add(new() { Value = arg });
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>The first column of every row.</summary>
    public async Task<List<T>> ListAsync<T>(string sql, params object[] args)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        foreach (var arg in args)
            cmd.Parameters.Add(new() { Value = arg });
        await using var reader = await cmd.ExecuteReaderAsync();
        var list = new List<T>();
        while (await reader.ReadAsync())
            list.Add(reader.GetFieldValue<T>(0));
        return list;
    }

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        await using var connection = new NpgsqlConnection(_adminConnectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", connection);
        await cmd.ExecuteNonQueryAsync();
    }
}

/// <summary>xUnit class fixture: one migrated database per test class.</summary>
public sealed class MigratedDatabase : IAsyncLifetime
{
    private TestDatabase? _db;

    public TestDatabase Db => _db ?? throw new InvalidOperationException("fixture not initialised");

    public async Task InitializeAsync() => _db = await TestDatabase.CreateAsync();

    public async Task DisposeAsync()
    {
        if (_db is not null)
            await _db.DisposeAsync();
    }
}
