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
    /// How batches are written. COPY-merge is the default: 1.5–1.8× the rows/s of unnest with
    /// 500-item batches in our measurements (docs/benchmarks.md); at 64 items they are close, and
    /// with an HNSW index the index build dominates both.
    /// </summary>
    public WriteStrategy WriteStrategy { get; set; } = WriteStrategy.CopyMerge;
}

/// <summary>Validates <see cref="PersistenceOptions"/> at start (source-generated).</summary>
[OptionsValidator]
public sealed partial class PersistenceOptionsValidator : IValidateOptions<PersistenceOptions>;
