using Npgsql;

namespace FreeBind.Persistence.Spaces;

/// <summary>Reading <c>space_versions</c> rows and the per-space lock every version change takes.</summary>
internal static class SpaceVersionRows
{
    public const string Columns = "id, space, digest, dimension, state, table_name";

    public const string DetailColumns = Columns + ", created_at, ready_at, activated_at, retired_at, retain_until, ended_at, end_reason, previous_id";

    // Table names come from the database (embeddings_v{id}), never from input; quoting is belt and braces.
    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    public static SpaceVersion Read(NpgsqlDataReader reader) => new(
        reader.GetInt32(0), reader.GetString(1), reader.GetString(2), reader.GetInt32(3),
        Enum.Parse<SpaceVersionState>(reader.GetString(4), ignoreCase: true), reader.GetString(5));

    public static SpaceVersionDetails ReadDetails(NpgsqlDataReader reader)
    {
        DateTimeOffset? At(int i) => reader.IsDBNull(i) ? null : reader.GetFieldValue<DateTimeOffset>(i);
        return new SpaceVersionDetails(Read(reader), reader.GetFieldValue<DateTimeOffset>(6), At(7), At(8), At(9), At(10), At(11),
            reader.IsDBNull(12) ? null : reader.GetString(12), reader.IsDBNull(13) ? null : reader.GetInt32(13));
    }

    public static async Task<SpaceVersion?> FindAsync(
        NpgsqlConnection connection, NpgsqlTransaction? tx, string where, object[] args, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"SELECT {Columns} FROM space_versions WHERE {where}", connection, tx);
        foreach (var arg in args)
            cmd.Parameters.Add(new() { Value = arg });
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Read(reader) : null;
    }

    public static async Task<SpaceVersion> RequireAsync(NpgsqlConnection connection, NpgsqlTransaction tx, int id, CancellationToken ct) =>
        await FindAsync(connection, tx, "id = $1", [id], ct)
        ?? throw new SpaceVersionException(SpaceVersionRefusal.UnknownVersion, $"space version {id} does not exist");

    /// <summary>
    /// Serialises every version change of a space (and waits for one in flight). NO KEY UPDATE does not
    /// block the KEY SHARE locks that inserts referencing the space take, so writers never wait on it.
    /// </summary>
    /// <returns>False when the space does not exist.</returns>
    public static async Task<bool> LockSpaceAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string space, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT 1 FROM spaces WHERE name = $1 FOR NO KEY UPDATE", connection, tx);
        cmd.Parameters.Add(new() { Value = space });
        return await cmd.ExecuteScalarAsync(ct) is not null;
    }
}
