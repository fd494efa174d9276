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
    /// How batches are written. Unnest is the default: into tables with their HNSW index (the
    /// worker's case) it wrote 1.36–1.46× the rows/s of COPY-merge, which pays for three temporary
    /// tables per batch (docs/benchmarks.md, ingestion); without an index COPY-merge is faster.
    /// </summary>
    public WriteStrategy WriteStrategy { get; set; } = WriteStrategy.Unnest;
}

/// <summary>Validates <see cref="PersistenceOptions"/> at start (source-generated).</summary>
[OptionsValidator]
public sealed partial class PersistenceOptionsValidator : IValidateOptions<PersistenceOptions>;
