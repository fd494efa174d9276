using System.ComponentModel.DataAnnotations;
using FreeBind.Persistence.Embeddings;
using Microsoft.Extensions.Options;

namespace FreeBind.Persistence;

/// <summary>Postgres settings, bound from the <c>Persistence</c> section.</summary>
public sealed class PersistenceOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Persistence";

    /// <summary>Npgsql connection string; when empty, <c>$FREEBIND_PG</c> (printed by scripts/services.sh env).</summary>
    [Required(ErrorMessage = "Persistence:ConnectionString is required (or set FREEBIND_PG)")]
    public string ConnectionString { get; set; } = "";

    /// <summary>Apply pending migrations when the host starts (otherwise run <c>freebind migrate</c>).</summary>
    public bool MigrateOnStart { get; set; } = true;

    /// <summary>
    /// How batches are written. With the HNSW index present (the worker's case) the two swap places
    /// from run to run, within the noise (docs/benchmarks.md, ingestion, rows c and c′); Unnest is the
    /// default as the simpler statement (COPY-merge creates three temporary tables per batch).
    /// </summary>
    public WriteStrategy WriteStrategy { get; set; } = WriteStrategy.Unnest;
}

/// <summary>Validates <see cref="PersistenceOptions"/> at start (source-generated).</summary>
[OptionsValidator]
public sealed partial class PersistenceOptionsValidator : IValidateOptions<PersistenceOptions>;
