using Npgsql;

namespace FreeBind.Persistence.Spaces;

/// <summary>One transaction holding the lock on a space row: the frame of every version change.</summary>
internal sealed class SpaceScope : IAsyncDisposable
{
    private readonly CancellationToken _ct;

    private SpaceScope(NpgsqlConnection connection, NpgsqlTransaction transaction, string space, CancellationToken ct)
    {
        Connection = connection;
        Transaction = transaction;
        Space = space;
        _ct = ct;
    }

    public NpgsqlConnection Connection { get; }

    public NpgsqlTransaction Transaction { get; }

    public string Space { get; }

    public static async Task<SpaceScope> BeginAsync(NpgsqlDataSource dataSource, string space, CancellationToken ct)
    {
        var connection = await dataSource.OpenConnectionAsync(ct);
        try
        {
            var tx = await connection.BeginTransactionAsync(ct);
            var scope = new SpaceScope(connection, tx, space, ct);
            if (!await SpaceVersionRows.LockSpaceAsync(connection, tx, space, ct))
            {
                await scope.DisposeAsync();
                throw new SpaceVersionException(SpaceVersionRefusal.UnknownSpace, $"space \"{space}\" has no registered version");
            }
            return scope;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>The version with <paramref name="id"/> in this space, as it is now.</summary>
    public async Task<SpaceVersion> RequireAsync(int id)
    {
        var version = await FindAsync("id = $1 AND space = $2", id, Space);
        return version ?? throw new SpaceVersionException(SpaceVersionRefusal.UnknownVersion, $"space \"{Space}\" has no version with id {id}");
    }

    public Task<SpaceVersion?> FindAsync(string where, params object[] args) =>
        SpaceVersionRows.FindAsync(Connection, Transaction, where, args, _ct);

    public async Task<SpaceVersionDetails?> FindDetailsAsync(string where, params object[] args)
    {
        await using var cmd = Command($"SELECT {SpaceVersionRows.DetailColumns} FROM space_versions WHERE {where}", args);
        await using var reader = await cmd.ExecuteReaderAsync(_ct);
        return await reader.ReadAsync(_ct) ? SpaceVersionRows.ReadDetails(reader) : null;
    }

    public async Task<object?> ScalarAsync(string sql, params object[] args)
    {
        await using var cmd = Command(sql, args);
        var value = await cmd.ExecuteScalarAsync(_ct);
        return value is DBNull ? null : value;
    }

    public async Task<int> ExecuteAsync(string sql, params object[] args)
    {
        await using var cmd = Command(sql, args);
        return await cmd.ExecuteNonQueryAsync(_ct);
    }

    public async Task<int> ExecuteNamedAsync(string sql, params (string Name, object Value)[] args)
    {
        await using var cmd = new NpgsqlCommand(sql, Connection, Transaction);
        foreach (var (name, value) in args)
            cmd.Parameters.AddWithValue(name, value);
        return await cmd.ExecuteNonQueryAsync(_ct);
    }

    public Task CommitAsync() => Transaction.CommitAsync(_ct);

    public async ValueTask DisposeAsync()
    {
        await Transaction.DisposeAsync();
        await Connection.DisposeAsync();
    }

    private NpgsqlCommand Command(string sql, object[] args)
    {
        var cmd = new NpgsqlCommand(sql, Connection, Transaction);
        foreach (var arg in args)
            cmd.Parameters.Add(new() { Value = arg });
        return cmd;
    }
}
