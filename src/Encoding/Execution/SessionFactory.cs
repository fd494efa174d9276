using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;

namespace FreeBind.Encoding.Execution;

/// <summary>
/// Creates every <see cref="InferenceSession"/> of the process with the configured execution
/// provider. The GPU attempt happens once; if it cannot load (no CUDA here), every session is built
/// from fresh CPU options and one line says which provider runs and why: information when the
/// provider is <c>auto</c>, a warning when a GPU provider was asked for by name.
/// </summary>
public sealed partial class SessionFactory(OnnxOptions options, ILogger<SessionFactory> logger)
{
    private readonly Lock _gate = new();
    private string? _provider;

    /// <summary>The provider sessions actually run on (<c>CUDA</c>, <c>TensorRT</c> or <c>CPU</c>), once one was created.</summary>
    public string? ActiveProvider => _provider;

    public OnnxOptions Options => options;

    public InferenceSession Create(string path) => Create(so => new InferenceSession(path, so));

    public InferenceSession Create(byte[] model) => Create(so => new InferenceSession(model, so));

    /// <summary>
    /// A session without an intra-op thread pool: its CPU work runs on the calling thread, for a
    /// caller that spreads work over the cores by concurrent <c>Run</c>s (the fusion engine does).
    /// </summary>
    public InferenceSession CreateSingleThreaded(byte[] model) => Create(so => new InferenceSession(model, so), singleThreaded: true);

    private InferenceSession Create(Func<SessionOptions, InferenceSession> open, bool singleThreaded = false)
    {
        lock (_gate)
        {
            if (_provider is null)
            {
                var requested = options.ExecutionProvider;
                if (requested == "cpu")
                {
                    _provider = "CPU";
                    LogProvider(logger, "CPU", "configured");
                }
                else
                {
                    var gpu = requested == "tensorrt" ? "TensorRT" : "CUDA";
                    // ONNX Runtime logs its own multi-line error for a missing CUDA library; our
                    // fallback line below says the same once, so quiet the native log meanwhile.
                    var env = OrtEnv.Instance();
                    var level = env.EnvLogLevel;
                    env.EnvLogLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
                    try
                    {
                        var session = open(Build(gpu, singleThreaded));
                        _provider = gpu;
                        LogProvider(logger, gpu, $"device {options.DeviceId}");
                        return session;
                    }
                    catch (Exception e) when (e is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
                    {
                        _provider = "CPU";
                        // Asked for a GPU by name, its absence is worth a warning; on "auto" CPU is an
                        // expected outcome (every CPU machine), so it is said once, as information.
                        if (requested == "auto") LogAutoCpu(logger, FirstLine(e.Message));
                        else LogFallback(logger, gpu, requested, FirstLine(e.Message));
                    }
                    finally
                    {
                        env.EnvLogLevel = level;
                    }
                }
            }
        }
        return open(Build(_provider, singleThreaded));
    }

    private SessionOptions Build(string provider, bool singleThreaded)
    {
        var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        if (singleThreaded) so.IntraOpNumThreads = 1;
        else if (options.IntraOpThreads > 0) so.IntraOpNumThreads = options.IntraOpThreads;
        if (!singleThreaded && !options.AllowSpinning) so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        try
        {
            if (provider == "TensorRT")
            {
                so.AppendExecutionProvider_Tensorrt(options.DeviceId);
                so.AppendExecutionProvider_CUDA(options.DeviceId);
            }
            else if (provider == "CUDA")
            {
                so.AppendExecutionProvider_CUDA(options.DeviceId);
            }
        }
        catch
        {
            so.Dispose();
            throw;
        }
        return so;
    }

    private static string FirstLine(string message)
    {
        var line = message.Split('\n', 2)[0].Trim();
        return line.Length > 300 ? line[..300] + "…" : line;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "ONNX Runtime execution provider: {Provider} ({Reason})")]
    private static partial void LogProvider(ILogger logger, string provider, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "ONNX Runtime execution provider: CPU (Onnx:ExecutionProvider=auto found no usable CUDA: {Reason}; set it to cpu to skip the attempt, see docs/gpu.md)")]
    private static partial void LogAutoCpu(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "ONNX Runtime execution provider: CPU — {Gpu} (Onnx:ExecutionProvider={Requested}) is unavailable: {Reason} (the CUDA provider needs an NVIDIA driver with the CUDA 13 and cuDNN 9 libraries; see docs/gpu.md)")]
    private static partial void LogFallback(ILogger logger, string gpu, string requested, string reason);
}
