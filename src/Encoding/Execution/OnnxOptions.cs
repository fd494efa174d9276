using System.ComponentModel.DataAnnotations;

namespace FreeBind.Encoding.Execution;

/// <summary>ONNX Runtime settings (configuration section <c>Onnx</c>).</summary>
public sealed class OnnxOptions
{
    public const string Section = "Onnx";

    /// <summary><c>auto</c> (CUDA when it loads, else CPU), <c>cuda</c>, <c>tensorrt</c> (TensorRT, then CUDA) or <c>cpu</c>.</summary>
    [RegularExpression("^(auto|cuda|tensorrt|cpu)$", ErrorMessage = "Onnx:ExecutionProvider must be auto, cuda, tensorrt or cpu")]
    public string ExecutionProvider { get; set; } = "auto";

    /// <summary>GPU ordinal for CUDA/TensorRT.</summary>
    [Range(0, 64)]
    public int DeviceId { get; set; }

    /// <summary>
    /// Threads per CPU session; 0 lets ONNX Runtime use one per core. Projector mixtures run in
    /// single-threaded sessions and split a batch into this many concurrent runs instead (0: one per core).
    /// </summary>
    [Range(0, 1024)]
    public int IntraOpThreads { get; set; }

    /// <summary>
    /// Whether a session's intra-op threads keep polling for work after a <c>Run</c> (ONNX Runtime's
    /// default). Off by default: on CPU each <c>Run</c> then left 64–97 ms of spinning CPU behind it,
    /// competing with the fusion and the writes that follow (docs/benchmarks.md, ingestion).
    /// </summary>
    public bool AllowSpinning { get; set; }

    /// <summary>Largest number of items merged into one <c>Run</c>.</summary>
    [Range(1, 65536)]
    public int MaxBatch { get; set; } = 64;

    /// <summary>How long the first item of a batch waits for company, in milliseconds.</summary>
    [Range(0.0, 10_000.0)]
    public double MaxWaitMs { get; set; } = 2;

    /// <summary>Items that may wait per session before callers are held back (back-pressure).</summary>
    [Range(1, 1_000_000)]
    public int QueueCapacity { get; set; } = 4096;

    /// <summary>Check each projector's extracted weights against ONNX Runtime running its file, at load.</summary>
    public bool VerifyProjectors { get; set; } = true;
}
