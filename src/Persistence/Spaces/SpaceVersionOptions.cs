using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace FreeBind.Persistence.Spaces;

/// <summary>Space version lifecycle settings, bound from the <c>SpaceVersions</c> section.</summary>
public sealed class SpaceVersionOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "SpaceVersions";

    /// <summary>
    /// How long a replaced (or rolled back) version is kept, and still written by live ingestion, so
    /// that a rollback to it is exact. Its table is dropped after that. Default 7 days.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "365.00:00:00")]
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>How often <see cref="RetentionSweep"/> drops retired versions past their retention. Default 10 minutes.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// <c>maintenance_work_mem</c> of an HNSW index build, in MiB. The build is much faster while the
    /// graph fits in it (pgvector), so give it what the server can spare. Default 1024.
    /// </summary>
    [Range(64, 1 << 20)]
    public int IndexBuildMemoryMb { get; set; } = 1024;

    /// <summary>
    /// <c>max_parallel_maintenance_workers</c> of an HNSW index build (the server's
    /// <c>max_worker_processes</c> caps it). Default 2.
    /// </summary>
    [Range(0, 64)]
    public int IndexBuildWorkers { get; set; } = 2;
}

/// <summary>Validates <see cref="SpaceVersionOptions"/> at start (source-generated).</summary>
[OptionsValidator]
public sealed partial class SpaceVersionOptionsValidator : IValidateOptions<SpaceVersionOptions>;
