using System.ComponentModel.DataAnnotations;

namespace FreeBind.Consumers.Reembedding;

/// <summary>How re-embedding runs behave (section <c>Reembedding</c>).</summary>
public sealed class ReembeddingOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Reembedding";

    /// <summary>A published space version starts a run by itself (<c>freebind spaces publish</c>).</summary>
    public bool StartOnPublish { get; set; } = true;

    /// <summary>Media ids per backfill batch (one message, one write).</summary>
    [Range(1, 100_000)]
    public int BatchSize { get; set; } = 512;

    /// <summary>Batches dispatched ahead of the workers; a new window is cut when half of it is done.</summary>
    [Range(1, 10_000)]
    public int WindowBatches { get; set; } = 16;

    /// <summary>Items the verify gate recomputes from content end to end.</summary>
    [Range(0, 1_000_000)]
    public int VerifySampleSize { get; set; } = 200;

    /// <summary>How often the saga host nudges runs that wait (re-issuing a command a crash may have lost).</summary>
    public TimeSpan WatchdogInterval { get; set; } = TimeSpan.FromSeconds(30);
}
