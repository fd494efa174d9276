using FreeBind.Persistence.Spaces;
using Npgsql;
using NpgsqlTypes;
using Pgvector;

namespace FreeBind.Persistence.Search;

/// <summary>One neighbour of a query.</summary>
/// <param name="MediaId">The item.</param>
/// <param name="Distance">Cosine distance to the query (0 = same direction).</param>
/// <param name="Tenant">The item's tenant.</param>
/// <param name="Modality"><c>image</c>, <c>audio</c> or <c>text</c>.</param>
/// <param name="MetadataJson">The item's metadata (a JSON object).</param>
public sealed record SearchHit(string MediaId, double Distance, string Tenant, string Modality, string MetadataJson)
{
    /// <summary>Cosine similarity, <c>1 - Distance</c>.</summary>
    public double Similarity => 1 - Distance;
}

/// <summary>The answer to one query: every hit comes from one version.</summary>
/// <param name="VersionId">The version that answered; null when it held no item to return.</param>
/// <param name="Digest">That version's digest; null likewise.</param>
/// <param name="Hits">Nearest first (ties by media id).</param>
public sealed record SearchResult(int? VersionId, string? Digest, IReadOnlyList<SearchHit> Hits);

/// <summary>
/// k-nearest-neighbour search over stored vectors, through the SQL functions downstream readers use
/// (docs/querying.md): <c>freebind_search</c> for the active version of a space, and
/// <c>freebind_search_version</c> for one given version, approximate (HNSW) or exact.
/// </summary>
public sealed class VectorSearch(NpgsqlDataSource dataSource)
{
    /// <summary>Most neighbours one query may ask for.</summary>
    public const int MaxK = 1000;

    /// <summary>
    /// The <paramref name="k"/> nearest items to <paramref name="query"/> in the active version of
    /// <paramref name="space"/> (HNSW). A cut-over committing meanwhile is seen entirely or not at all.
    /// </summary>
    /// <param name="space">Space name.</param>
    /// <param name="query">A normalised vector of the active version's width.</param>
    /// <param name="k">Neighbours, 1–1000.</param>
    /// <param name="tenant">Only this tenant's items; null for all.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <exception cref="SpaceVersionException">The space has no active version.</exception>
    /// <exception cref="ArgumentException">The query's width differs from the version's.</exception>
    public Task<SearchResult> SearchAsync(string space, ReadOnlyMemory<float> query, int k = 10, string? tenant = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, MaxK);
        return RunAsync("SELECT * FROM freebind_search($1, $2, $3, $4)", [space, new Vector(query), k, Text(tenant)], activeOnly: true, cancellationToken);
    }

    /// <summary>
    /// The <paramref name="k"/> nearest items in one given version, whatever its state while it has a
    /// table (the verify gate searches a version before it is served). <paramref name="exact"/> scans
    /// every row instead of the HNSW index: the ground truth for recall.
    /// </summary>
    /// <param name="version">The version to search.</param>
    /// <param name="query">A normalised vector of the version's width.</param>
    /// <param name="k">Neighbours, 1–1000.</param>
    /// <param name="tenant">Only this tenant's items; null for all.</param>
    /// <param name="exact">True for an exhaustive scan, false for the HNSW index (as <c>freebind_search</c>).</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <exception cref="SpaceVersionException">The version's table is gone.</exception>
    public Task<SearchResult> SearchVersionAsync(
        SpaceVersion version, ReadOnlyMemory<float> query, int k = 10, string? tenant = null, bool exact = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(version);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, MaxK);
        if (query.Length != version.Dimension)
            throw new ArgumentException($"the query has {query.Length} dimensions, version {version.Key} has {version.Dimension}", nameof(query));
        return RunAsync("SELECT * FROM freebind_search_version($1, $2, $3, $4, $5)",
            [version.Id, new Vector(query), k, Text(tenant), exact], activeOnly: false, cancellationToken);
    }

    private static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    private async Task<SearchResult> RunAsync(string sql, object[] args, bool activeOnly, CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand(sql);
        foreach (var arg in args)
            cmd.Parameters.Add(arg as NpgsqlParameter ?? new NpgsqlParameter { Value = arg });
        var hits = new List<SearchHit>();
        int? versionId = null;
        string? digest = null;
        try
        {
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                hits.Add(new SearchHit(reader.GetString(0), reader.GetDouble(1), reader.GetString(3), reader.GetString(4), reader.GetString(5)));
                versionId = reader.GetInt32(6);
                digest = reader.GetString(7);
            }
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.NoDataFound)
        {
            throw new SpaceVersionException(activeOnly ? SpaceVersionRefusal.NoActiveVersion : SpaceVersionRefusal.Ended, e.MessageText);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DataException)
        {
            throw new ArgumentException(e.MessageText, "query");
        }
        return new SearchResult(versionId, digest, hits);
    }
}
