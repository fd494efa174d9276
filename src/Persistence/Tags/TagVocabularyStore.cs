using FreeBind.Persistence.Spaces;
using Npgsql;
using NpgsqlTypes;
using Pgvector;

namespace FreeBind.Persistence.Tags;

/// <summary>A vocabulary label's prompt embedding in one space version.</summary>
/// <param name="Label">The label.</param>
/// <param name="Modality">The modality whose prompt template produced it.</param>
/// <param name="Vector">The embedded prompt (the version's dimension).</param>
public sealed record LabelEmbedding(string Label, string Modality, ReadOnlyMemory<float> Vector);

/// <summary>A tenant's label vocabulary.</summary>
/// <param name="Id">Vocabulary id (referenced by tags).</param>
/// <param name="Tenant">Owning tenant.</param>
/// <param name="Name">Name, unique per tenant.</param>
/// <param name="Labels">Labels, in ordinal order.</param>
public sealed record TagVocabulary(long Id, string Tenant, string Name, IReadOnlyList<string> Labels);

/// <summary>Per-tenant label vocabularies and their embeddings per space version.</summary>
public sealed class TagVocabularyStore(NpgsqlDataSource dataSource)
{
    /// <summary>Creates or extends a vocabulary; returns its id. Labels already present are kept.</summary>
    /// <param name="tenant">Owning tenant.</param>
    /// <param name="name">Vocabulary name, unique per tenant.</param>
    /// <param name="labels">Labels to add.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<long> UpsertAsync(string tenant, string name, IReadOnlyCollection<string> labels, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        long id;
        // The no-op update makes RETURNING yield the id of an existing vocabulary too.
        await using (var cmd = new NpgsqlCommand("""
            INSERT INTO tag_vocabularies (tenant, name) VALUES ($1, $2)
            ON CONFLICT (tenant, name) DO UPDATE SET name = excluded.name RETURNING id
            """, connection, tx))
        {
            cmd.Parameters.Add(new() { Value = tenant });
            cmd.Parameters.Add(new() { Value = name });
            id = (long)(await cmd.ExecuteScalarAsync(cancellationToken))!;
        }
        await using (var cmd = new NpgsqlCommand(
            "INSERT INTO tag_labels (vocabulary_id, label) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING", connection, tx))
        {
            cmd.Parameters.Add(new() { Value = id });
            cmd.Parameters.Add(new() { Value = labels.Distinct(StringComparer.Ordinal).ToArray() });
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }
        await tx.CommitAsync(cancellationToken);
        return id;
    }

    /// <summary>The tenant's vocabularies with their labels, by name.</summary>
    /// <param name="tenant">Owning tenant.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<IReadOnlyList<TagVocabulary>> ListAsync(string tenant, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand("""
            SELECT v.id, v.tenant, v.name,
                   coalesce(array_agg(l.label ORDER BY l.label COLLATE "C") FILTER (WHERE l.label IS NOT NULL), '{}')
            FROM tag_vocabularies v LEFT JOIN tag_labels l ON l.vocabulary_id = v.id
            WHERE v.tenant = $1
            GROUP BY v.id ORDER BY v.name
            """);
        cmd.Parameters.Add(new() { Value = tenant });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        var list = new List<TagVocabulary>();
        while (await reader.ReadAsync(cancellationToken))
            list.Add(new TagVocabulary(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetFieldValue<string[]>(3)));
        return list;
    }

    /// <summary>Stores (replacing) label embeddings of a vocabulary in a space version.</summary>
    /// <param name="version">The space version the embeddings belong to.</param>
    /// <param name="vocabularyId">The vocabulary.</param>
    /// <param name="embeddings">One entry per label and modality.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task WriteLabelEmbeddingsAsync(
        SpaceVersion version, long vocabularyId, IReadOnlyList<LabelEmbedding> embeddings, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand("""
            INSERT INTO tag_label_embeddings AS t (space_version_id, vocabulary_id, label, modality, embedding)
            SELECT $1, $2, label, modality, embedding FROM unnest($3::text[], $4::text[], $5::vector[]) AS s(label, modality, embedding)
            ON CONFLICT (space_version_id, vocabulary_id, label, modality) DO UPDATE SET embedding = excluded.embedding
            WHERE t.embedding IS DISTINCT FROM excluded.embedding
            """);
        cmd.Parameters.Add(new() { Value = version.Id });
        cmd.Parameters.Add(new() { Value = vocabularyId });
        cmd.Parameters.Add(new() { Value = embeddings.Select(e => e.Label).ToArray() });
        cmd.Parameters.Add(new() { Value = embeddings.Select(e => e.Modality).ToArray() });
        cmd.Parameters.Add(new() { Value = embeddings.Select(e => new Vector(e.Vector)).ToArray(), DataTypeName = "vector[]" });
        await cmd.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Label embeddings of a vocabulary for one modality in a version (to score items against).</summary>
    /// <param name="version">The space version.</param>
    /// <param name="vocabularyId">The vocabulary.</param>
    /// <param name="modality">The items' modality.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<IReadOnlyList<LabelEmbedding>> GetLabelEmbeddingsAsync(
        SpaceVersion version, long vocabularyId, string modality, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand("""
            SELECT label, modality, embedding FROM tag_label_embeddings
            WHERE space_version_id = $1 AND vocabulary_id = $2 AND modality = $3 ORDER BY label
            """);
        cmd.Parameters.Add(new() { Value = version.Id });
        cmd.Parameters.Add(new() { Value = vocabularyId });
        cmd.Parameters.Add(new() { Value = modality, NpgsqlDbType = NpgsqlDbType.Text });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        var list = new List<LabelEmbedding>();
        while (await reader.ReadAsync(cancellationToken))
            list.Add(new LabelEmbedding(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<Vector>(2).Memory));
        return list;
    }

    /// <summary>The tags of an item in a version, best first.</summary>
    /// <param name="version">The space version.</param>
    /// <param name="mediaId">The item.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<IReadOnlyList<Embeddings.TagScore>> GetItemTagsAsync(SpaceVersion version, string mediaId, CancellationToken cancellationToken = default)
    {
        await using var cmd = dataSource.CreateCommand("""
            SELECT vocabulary_id, label, score FROM media_tags
            WHERE space_version_id = $1 AND media_id = $2 ORDER BY score DESC, label
            """);
        cmd.Parameters.Add(new() { Value = version.Id });
        cmd.Parameters.Add(new() { Value = mediaId });
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        var list = new List<Embeddings.TagScore>();
        while (await reader.ReadAsync(cancellationToken))
            list.Add(new Embeddings.TagScore(reader.GetInt64(0), reader.GetString(1), reader.GetFloat(2)));
        return list;
    }
}
