using Npgsql;

namespace FreeBind.Persistence.Reembedding;

/// <summary>The atoms a new version's fusion needs for one modality (every expert that serves it, at the new model digest).</summary>
/// <param name="Modality"><c>image</c>, <c>audio</c> or <c>text</c>.</param>
/// <param name="Atoms">The expert models whose atoms the fusion of this modality reads.</param>
public sealed record AtomNeed(string Modality, IReadOnlyList<AtomKey> Atoms);

/// <summary>What a backfill will do for one modality, counted from the stored atoms and content.</summary>
/// <param name="Modality">The modality.</param>
/// <param name="Items">Live items of the modality.</param>
/// <param name="RefuseOnly">Items with every needed atom stored: a re-fusion, no encoder.</param>
/// <param name="NeedEncoding">Items lacking at least one needed atom whose content can be read again.</param>
/// <param name="NotRetrievable">Items lacking an atom whose content is gone (inline data over the cap): listed as failures.</param>
/// <param name="EncodesByAtom">Per needed expert model: the items it must encode (lacking that atom, content retrievable).</param>
public sealed record ModalityPlan(string Modality, long Items, long RefuseOnly, long NeedEncoding, long NotRetrievable, IReadOnlyDictionary<AtomKey, long> EncodesByAtom);

/// <summary>
/// Counts, before a run, how each live item will be backfilled: re-fused from stored atoms, re-encoded
/// (per expert model, only where its atom is missing), or not at all because its content cannot be read again.
/// </summary>
public sealed class BackfillPlanner(NpgsqlDataSource dataSource)
{
    /// <summary>Counts per modality for the given needs (one per modality the new version serves).</summary>
    /// <param name="needs">The atoms each served modality's fusion reads.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    public async Task<IReadOnlyList<ModalityPlan>> PlanAsync(IReadOnlyCollection<AtomNeed> needs, CancellationToken cancellationToken = default)
    {
        var flat = needs.SelectMany(n => n.Atoms.Distinct().Select(a => (n.Modality, a.Expert, a.ModelDigest))).ToList();
        // Content can be read again when it is stored (text, inline within the cap) or named by a URI.
        const string Lacking = """
            WITH need AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS n(modality, expert, model_digest)
            ), items AS (
                SELECT m.id, m.modality,
                       m.source NOT IN ('inline', 'text') OR EXISTS (SELECT 1 FROM media_content c WHERE c.media_id = m.id) AS retrievable
                FROM media m WHERE m.modality = ANY($4)
            ), lacking AS (
                SELECT i.id, i.modality, i.retrievable, n.expert, n.model_digest
                FROM items i JOIN need n ON n.modality = i.modality
                WHERE NOT EXISTS (SELECT 1 FROM atoms a WHERE a.media_id = i.id AND a.expert = n.expert AND a.model_digest = n.model_digest)
            )
            """;
        var modalities = needs.Select(n => n.Modality).Distinct().ToArray();
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        var totals = new Dictionary<string, (long Items, long Encode, long Gone)>(StringComparer.Ordinal);
        await using (var cmd = Command(connection, tx, Lacking + """
            SELECT i.modality, count(*),
                   count(*) FILTER (WHERE l.id IS NOT NULL AND i.retrievable), count(*) FILTER (WHERE l.id IS NOT NULL AND NOT i.retrievable)
            FROM items i LEFT JOIN (SELECT DISTINCT id FROM lacking) l ON l.id = i.id
            GROUP BY i.modality
            """, flat, modalities))
        await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken))
            while (await reader.ReadAsync(cancellationToken))
                totals[reader.GetString(0)] = (reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3));
        var encodes = new Dictionary<(string Modality, AtomKey Atom), long>();
        await using (var cmd = Command(connection, tx, Lacking + """
            SELECT modality, expert, model_digest, count(*) FROM lacking WHERE retrievable GROUP BY 1, 2, 3
            """, flat, modalities))
        await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken))
            while (await reader.ReadAsync(cancellationToken))
                encodes[(reader.GetString(0), new AtomKey(reader.GetString(1), reader.GetString(2)))] = reader.GetInt64(3);
        await tx.CommitAsync(cancellationToken);

        return needs.Select(n =>
        {
            var (items, encode, gone) = totals.GetValueOrDefault(n.Modality);
            var byAtom = n.Atoms.Distinct().ToDictionary(a => a, a => encodes.GetValueOrDefault((n.Modality, a)));
            return new ModalityPlan(n.Modality, items, items - encode - gone, encode, gone, byAtom);
        }).ToList();
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction tx, string sql, List<(string Modality, string Expert, string ModelDigest)> flat, string[] modalities)
    {
        var cmd = new NpgsqlCommand(sql, connection, tx) { CommandTimeout = 0 };
        cmd.Parameters.Add(new() { Value = flat.Select(f => f.Modality).ToArray() });
        cmd.Parameters.Add(new() { Value = flat.Select(f => f.Expert).ToArray() });
        cmd.Parameters.Add(new() { Value = flat.Select(f => f.ModelDigest).ToArray() });
        cmd.Parameters.Add(new() { Value = modalities });
        return cmd;
    }
}
