using System.Text.Json;
using MassTransit;
using Npgsql;
using NpgsqlTypes;

namespace FreeBind.Persistence.Sagas;

/// <summary>Another stored instance holds the exclusive key this one tried to take.</summary>
public sealed class SagaKeyConflictException(Type sagaType, Guid correlationId, string key, Exception inner)
    : ConcurrencyException($"another instance of {sagaType.Name} holds the key '{key}'", sagaType, correlationId, inner)
{
    /// <summary>The contested key.</summary>
    public string Key { get; } = key;
}

/// <summary>
/// Saga instances of one type in one Postgres table (columns <c>correlation_id, version,
/// current_state, exclusive_key, data, created_at, updated_at</c>, created by a migration), with
/// optimistic concurrency: an update or delete names the version it read and fails with
/// <see cref="ConcurrencyException"/> when another writer got there first. Every statement is its own
/// transaction, so no lock is held while a message is handled.
/// </summary>
/// <typeparam name="TSaga">The saga instance type; serialised to jsonb with System.Text.Json.</typeparam>
public sealed class SagaStore<TSaga>
    where TSaga : class, IStoredSaga
{
    private const string UniqueViolation = "23505";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.General);

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _table;

    /// <summary>Creates a store over <paramref name="table"/>.</summary>
    /// <param name="dataSource">The process's data source.</param>
    /// <param name="table">Table name (a plain identifier created by a migration).</param>
    public SagaStore(NpgsqlDataSource dataSource, string table)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        if (string.IsNullOrEmpty(table) || !table.All(c => c is >= 'a' and <= 'z' or >= '0' and <= '9' or '_'))
            throw new ArgumentException($"saga table '{table}' must be a lower-case identifier", nameof(table));
        _dataSource = dataSource;
        _table = table;
    }

    /// <summary>The table's name.</summary>
    public string Table => _table;

    /// <summary>Stores a new instance at version 1.</summary>
    /// <param name="instance">The instance; its <see cref="ISagaVersion.Version"/> becomes 1.</param>
    /// <param name="cancellationToken">Cancels the insert.</param>
    /// <exception cref="ConcurrencyException">An instance with this correlation id exists already (a duplicate or racing first message).</exception>
    /// <exception cref="SagaKeyConflictException">Another instance holds the exclusive key.</exception>
    public async Task InsertAsync(TSaga instance, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instance);
        var previous = instance.Version;
        instance.Version = 1;
        await using var cmd = _dataSource.CreateCommand($"""
            INSERT INTO {_table} (correlation_id, version, current_state, exclusive_key, data)
            VALUES ($1, $2, $3, $4, $5)
            """);
        AddRow(cmd, instance);
        try
        {
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState == UniqueViolation)
        {
            instance.Version = previous;
            throw Conflict(instance, e);
        }
        catch
        {
            instance.Version = previous;
            throw;
        }
    }

    /// <summary>The stored instance, or null.</summary>
    /// <param name="correlationId">Its correlation id.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public async Task<TSaga?> LoadAsync(Guid correlationId, CancellationToken cancellationToken = default)
    {
        await using var cmd = _dataSource.CreateCommand($"SELECT version, data FROM {_table} WHERE correlation_id = $1");
        cmd.Parameters.Add(new() { Value = correlationId });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    /// <summary>
    /// Writes <paramref name="instance"/> over the version it was read at and increments its version.
    /// </summary>
    /// <param name="instance">The instance as loaded and changed.</param>
    /// <param name="cancellationToken">Cancels the update.</param>
    /// <exception cref="ConcurrencyException">The stored version moved on (or the row is gone) since it was read.</exception>
    /// <exception cref="SagaKeyConflictException">Another instance holds the exclusive key this one now claims.</exception>
    public async Task UpdateAsync(TSaga instance, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instance);
        var expected = instance.Version;
        instance.Version = expected + 1;
        await using var cmd = _dataSource.CreateCommand($"""
            UPDATE {_table} SET version = $2, current_state = $3, exclusive_key = $4, data = $5, updated_at = now()
            WHERE correlation_id = $1 AND version = $6
            """);
        AddRow(cmd, instance);
        cmd.Parameters.Add(new() { Value = expected });
        int rows;
        try
        {
            rows = await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState == UniqueViolation)
        {
            instance.Version = expected;
            throw Conflict(instance, e);
        }
        catch
        {
            instance.Version = expected;
            throw;
        }
        if (rows == 0)
        {
            instance.Version = expected;
            throw new ConcurrencyException($"{typeof(TSaga).Name} {instance.CorrelationId} changed since version {expected} was read",
                typeof(TSaga), instance.CorrelationId);
        }
    }

    /// <summary>Deletes the instance at the version it was read at.</summary>
    /// <param name="instance">The instance.</param>
    /// <param name="cancellationToken">Cancels the delete.</param>
    /// <exception cref="ConcurrencyException">The stored version moved on since it was read.</exception>
    public async Task DeleteAsync(TSaga instance, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instance);
        await using var cmd = _dataSource.CreateCommand($"DELETE FROM {_table} WHERE correlation_id = $1 AND version = $2");
        cmd.Parameters.Add(new() { Value = instance.CorrelationId });
        cmd.Parameters.Add(new() { Value = instance.Version });
        if (await cmd.ExecuteNonQueryAsync(cancellationToken) == 0)
            throw new ConcurrencyException($"{typeof(TSaga).Name} {instance.CorrelationId} changed since version {instance.Version} was read",
                typeof(TSaga), instance.CorrelationId);
    }

    /// <summary>The instance holding <paramref name="key"/>, or null.</summary>
    /// <param name="key">An exclusive key.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public async Task<TSaga?> FindByKeyAsync(string key, CancellationToken cancellationToken = default)
    {
        await using var cmd = _dataSource.CreateCommand($"SELECT version, data FROM {_table} WHERE exclusive_key = $1");
        cmd.Parameters.Add(new() { Value = key });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    /// <summary>Instances whose state is one of <paramref name="states"/> (all when empty), newest first.</summary>
    /// <param name="states">State names to match; none for every instance.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public async Task<IReadOnlyList<TSaga>> ListAsync(IReadOnlyCollection<string> states, CancellationToken cancellationToken = default)
    {
        await using var cmd = _dataSource.CreateCommand(
            $"SELECT version, data FROM {_table} WHERE cardinality($1::text[]) = 0 OR current_state = ANY($1) ORDER BY created_at DESC, correlation_id");
        cmd.Parameters.Add(new() { Value = states.ToArray() });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        var list = new List<TSaga>();
        while (await reader.ReadAsync(cancellationToken))
            list.Add(Read(reader));
        return list;
    }

    private static void AddRow(NpgsqlCommand cmd, TSaga instance)
    {
        cmd.Parameters.Add(new() { Value = instance.CorrelationId });
        cmd.Parameters.Add(new() { Value = instance.Version });
        cmd.Parameters.Add(new() { Value = instance.CurrentState ?? throw new InvalidOperationException($"{typeof(TSaga).Name} {instance.CorrelationId} has no state") });
        cmd.Parameters.Add(new() { Value = (object?)instance.ExclusiveKey ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        cmd.Parameters.Add(new() { Value = JsonSerializer.Serialize(instance, Json), NpgsqlDbType = NpgsqlDbType.Jsonb });
    }

    // The version column, not the copy inside data, is the one optimistic concurrency compares.
    private static TSaga Read(NpgsqlDataReader reader)
    {
        var instance = JsonSerializer.Deserialize<TSaga>(reader.GetString(1), Json)
            ?? throw new InvalidDataException($"a stored {typeof(TSaga).Name} is null");
        instance.Version = reader.GetInt32(0);
        return instance;
    }

    private static ConcurrencyException Conflict(TSaga instance, PostgresException e) =>
        e.ConstraintName is { } name && name.EndsWith("_exclusive_key", StringComparison.Ordinal) && instance.ExclusiveKey is { } key
            ? new SagaKeyConflictException(typeof(TSaga), instance.CorrelationId, key, e)
            : new ConcurrencyException($"{typeof(TSaga).Name} {instance.CorrelationId} exists already", typeof(TSaga), instance.CorrelationId, e);
}
