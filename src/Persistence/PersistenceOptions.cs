using System.ComponentModel.DataAnnotations;
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
    /// How long a starting host waits for Postgres (connection refused, starting up, failing over)
    /// before it gives up with one clear error.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan StartupTimeout { get; set; } = TimeSpan.FromSeconds(60);
}

/// <summary>Validates <see cref="PersistenceOptions"/> at start (source-generated).</summary>
[OptionsValidator]
public sealed partial class PersistenceOptionsValidator : IValidateOptions<PersistenceOptions>;
