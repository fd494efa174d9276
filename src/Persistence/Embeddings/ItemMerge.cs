using FreeBind.Persistence.Spaces;
using Npgsql;
using NpgsqlTypes;
using Pgvector;

namespace FreeBind.Persistence.Embeddings;

/// <summary>
/// The statements of one batch write, every column bound as an array and expanded with
/// <c>unnest</c>, so a batch is one round trip. Each statement is an idempotent merge: a row whose
/// values equal the stored ones is not rewritten (not even its timestamps), so a replay changes nothing.
/// </summary>
internal static class ItemMerge
{
    private const string MergeMedia = """
        INSERT INTO media AS t (id, tenant, modality, source, sha256, metadata)
        SELECT * FROM unnest(@id, @tenant, @modality, @source, @sha256, @metadata)
        ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, modality = excluded.modality, source = excluded.source,
            sha256 = excluded.sha256, metadata = excluded.metadata, updated_at = now()
        WHERE (t.tenant, t.modality, t.source, t.sha256, t.metadata)
            IS DISTINCT FROM (excluded.tenant, excluded.modality, excluded.source, excluded.sha256, excluded.metadata)
        """;

    // An item's atom set is replaced: atoms of experts or models it no longer has (e.g. it was
    // upserted with another modality) go, so stored atoms always describe the current content.
    private const string DeleteStaleAtoms = """
        DELETE FROM atoms t
        WHERE t.media_id = ANY(@items)
          AND NOT EXISTS (SELECT 1 FROM unnest(@a_media, @a_expert, @a_digest) AS n(media_id, expert, model_digest)
                          WHERE n.media_id = t.media_id AND n.expert = t.expert AND n.model_digest = t.model_digest)
        """;

    private const string MergeAtoms = """
        INSERT INTO atoms AS t (media_id, expert, model_digest, embedding)
        SELECT * FROM unnest(@a_media, @a_expert, @a_digest, @a_embedding)
        ON CONFLICT (media_id, expert, model_digest) DO UPDATE SET embedding = excluded.embedding
        WHERE t.embedding IS DISTINCT FROM excluded.embedding
        """;

    private const string DeleteStaleContent = """
        DELETE FROM media_content t WHERE t.media_id = ANY(@items) AND NOT t.media_id = ANY(@c_media)
        """;

    private const string MergeContent = """
        INSERT INTO media_content AS t (media_id, data)
        SELECT * FROM unnest(@c_media, @c_data)
        ON CONFLICT (media_id) DO UPDATE SET data = excluded.data
        WHERE t.data IS DISTINCT FROM excluded.data
        """;

    private static string MergeEmbeddings(SpaceVersion version) => $"""
        INSERT INTO {SpaceCatalog.Quote(version.TableName)} AS t (media_id, embedding)
        SELECT * FROM unnest(@e_media, @e_embedding)
        ON CONFLICT (media_id) DO UPDATE SET embedding = excluded.embedding, updated_at = now()
        WHERE t.embedding IS DISTINCT FROM excluded.embedding
        """;

    // The item's tag set in a version is replaced: stale ones are removed, changed scores updated,
    // equal ones left alone.
    private const string DeleteStaleTags = """
        DELETE FROM media_tags t
        WHERE t.space_version_id = @version AND t.media_id = ANY(@e_media)
          AND NOT EXISTS (SELECT 1 FROM unnest(@t_media, @t_vocab, @t_label) AS n(media_id, vocabulary_id, label)
                          WHERE n.media_id = t.media_id AND n.vocabulary_id = t.vocabulary_id AND n.label = t.label)
        """;

    private const string MergeTags = """
        INSERT INTO media_tags AS t (media_id, space_version_id, vocabulary_id, label, score)
        SELECT media_id, @version, vocabulary_id, label, score
        FROM unnest(@t_media, @t_vocab, @t_label, @t_score) AS n(media_id, vocabulary_id, label, score)
        ON CONFLICT (media_id, space_version_id, vocabulary_id, label) DO UPDATE SET score = excluded.score
        WHERE t.score IS DISTINCT FROM excluded.score
        """;

    /// <summary>Adds the statements for <paramref name="items"/> (distinct ids, ordered) to <paramref name="batch"/>.</summary>
    public static void Add(NpgsqlBatch batch, IReadOnlyList<ItemWrite> items)
    {
        var ids = items.Select(i => i.Media.Id).ToArray();
        batch.BatchCommands.Add(Command(MergeMedia,
            new("id", ids),
            new("tenant", items.Select(i => i.Media.Tenant).ToArray()),
            new("modality", items.Select(i => i.Media.Modality).ToArray()),
            new("source", items.Select(i => i.Media.Source).ToArray()),
            new("sha256", items.Select(i => i.Media.Sha256).ToArray()),
            new("metadata", NpgsqlDbType.Array | NpgsqlDbType.Jsonb) { Value = items.Select(i => i.Media.MetadataJson).ToArray() }));

        var atoms = items.SelectMany(i => i.Atoms.DistinctBy(a => (a.Expert, a.ModelDigest)).Select(a => (i.Media.Id, Atom: a))).ToList();
        NpgsqlParameter[] AtomKeys() =>
        [
            new("items", ids),
            new("a_media", atoms.Select(a => a.Id).ToArray()),
            new("a_expert", atoms.Select(a => a.Atom.Expert).ToArray()),
            new("a_digest", atoms.Select(a => a.Atom.ModelDigest).ToArray()),
        ];
        batch.BatchCommands.Add(Command(DeleteStaleAtoms, AtomKeys()));
        batch.BatchCommands.Add(Command(MergeAtoms, [.. AtomKeys().Skip(1), new("a_embedding", atoms.Select(a => new Vector(a.Atom.Vector)).ToArray())]));

        var content = items.Where(i => i.Content is not null).ToList();
        batch.BatchCommands.Add(Command(DeleteStaleContent, new("items", ids), new("c_media", content.Select(i => i.Media.Id).ToArray())));
        batch.BatchCommands.Add(Command(MergeContent,
            new("c_media", content.Select(i => i.Media.Id).ToArray()),
            new("c_data", NpgsqlDbType.Array | NpgsqlDbType.Bytea) { Value = content.Select(i => i.Content!).ToArray() }));

        var versions = items.SelectMany(i => i.Embeddings.Select(e => e.Version)).DistinctBy(v => v.Id).OrderBy(v => v.Id);
        foreach (var version in versions)
        {
            var rows = items.SelectMany(i => i.Embeddings.Where(e => e.Version.Id == version.Id).Take(1).Select(e => (i.Media.Id, Row: e))).ToList();
            batch.BatchCommands.Add(Command(MergeEmbeddings(version),
                new("e_media", rows.Select(r => r.Id).ToArray()),
                new("e_embedding", rows.Select(r => new Vector(r.Row.Embedding)).ToArray())));
            var tags = rows.SelectMany(r => r.Row.Tags.DistinctBy(t => (t.VocabularyId, t.Label)).Select(t => (r.Id, Tag: t))).ToList();
            NpgsqlParameter[] TagKeys() =>
            [
                new("version", version.Id),
                new("e_media", rows.Select(r => r.Id).ToArray()),
                new("t_media", tags.Select(t => t.Id).ToArray()),
                new("t_vocab", tags.Select(t => t.Tag.VocabularyId).ToArray()),
                new("t_label", tags.Select(t => t.Tag.Label).ToArray()),
            ];
            batch.BatchCommands.Add(Command(DeleteStaleTags, TagKeys()));
            batch.BatchCommands.Add(Command(MergeTags, [.. TagKeys().Where(p => p.ParameterName != "e_media"), new("t_score", tags.Select(t => t.Tag.Score).ToArray())]));
        }
    }

    /// <summary>Rows changed, read back from the statements <see cref="Add"/> put in the batch, in their order.</summary>
    public static WriteResult Result(NpgsqlBatch batch)
    {
        int Rows(int i) => batch.BatchCommands[i].RecordsAffected;
        int embeddings = 0, tags = 0;
        for (var i = 5; i + 2 < batch.BatchCommands.Count; i += 3)
        {
            embeddings += Rows(i);
            tags += Rows(i + 1) + Rows(i + 2);
        }
        return new WriteResult(Rows(0), embeddings, Rows(1) + Rows(2), tags, Rows(3) + Rows(4));
    }

    private static NpgsqlBatchCommand Command(string sql, params NpgsqlParameter[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.AddRange(parameters);
        return command;
    }
}
