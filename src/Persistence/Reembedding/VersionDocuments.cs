using FreeBind.Persistence.Spaces;
using Npgsql;

namespace FreeBind.Persistence.Reembedding;

/// <summary>
/// The document of a published space version (<c>space_version_documents</c>): its effective manifest
/// and the digest of every file it names, as the encoding side wrote it. What a backfill worker
/// reloads the version from for fusion only, without the encoder files.
/// </summary>
public sealed class VersionDocuments(NpgsqlDataSource dataSource)
{
    /// <summary>Stores the document of <paramref name="version"/>; a version's document never changes, so a repeat is a no-op.</summary>
    /// <param name="version">The registered version.</param>
    /// <param name="document">Its JSON document.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    public async Task SaveAsync(SpaceVersion version, string document, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(version);
        await using var cmd = dataSource.CreateCommand(
            "INSERT INTO space_version_documents (version_id, document) VALUES ($1, $2) ON CONFLICT (version_id) DO NOTHING");
        cmd.Parameters.Add(new() { Value = version.Id });
        cmd.Parameters.Add(new() { Value = document });
        await cmd.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The stored document of a version, or null when it was registered without one (e.g. by a live worker's first start).</summary>
    /// <param name="versionId">The version's id.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public async Task<string?> GetAsync(int versionId, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand("SELECT document FROM space_version_documents WHERE version_id = $1");
        cmd.Parameters.Add(new() { Value = versionId });
        return await cmd.ExecuteScalarAsync(cancellationToken) as string;
    }
}
