using FreeBind.Encoding.Execution;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;

namespace FreeBind.Tests.Encoding;

/// <summary>
/// The configured GPU provider is used where it can run, and falls back to CPU with exactly one
/// clear line where it cannot. Whether it can run is probed here on its own, by opening a session
/// with that provider directly, so the test is right on a machine with or without a GPU.
/// </summary>
public sealed class ExecutionProviderTests(ITestOutputHelper output)
{
    private sealed class ListLogger<T> : ILogger<T>
    {
        public List<(LogLevel Level, string Message)> Lines { get; } = [];
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Add((logLevel, formatter(state, exception)));
    }

    [Theory]
    [InlineData("cuda", "CUDA")]
    [InlineData("tensorrt", "TensorRT")]
    public void Gpu_provider_is_used_when_present_and_falls_back_to_cpu_with_one_line_when_not(string configured, string gpu)
    {
        var model = TestPaths.Data("models", "encoders", "imagebind", "vision.onnx");
        var present = CanOpenSessionWith(gpu, model, out var why);
        output.WriteLine($"{gpu}: {(present ? "present" : "absent — " + why)}");

        var logger = new ListLogger<SessionFactory>();
        var factory = new SessionFactory(new OnnxOptions { ExecutionProvider = configured }, logger);
        using (factory.Create(model)) { }
        using (factory.Create(model)) { }
        var line = Assert.Single(logger.Lines);
        if (present)
        {
            Assert.Equal(gpu, factory.ActiveProvider);
            Assert.Equal(LogLevel.Information, line.Level);
            Assert.Contains($"execution provider: {gpu} (device 0)", line.Message);
        }
        else
        {
            Assert.Equal("CPU", factory.ActiveProvider);
            Assert.Equal(LogLevel.Warning, line.Level);
            Assert.Contains($"CPU — {gpu} (Onnx:ExecutionProvider={configured}) is unavailable", line.Message);
        }
    }

    /// <summary>Ground truth for the test: a session with the provider appended opens, or it does not.</summary>
    private static bool CanOpenSessionWith(string gpu, string model, out string why)
    {
        why = "";
        var env = OrtEnv.Instance();
        var level = env.EnvLogLevel;
        env.EnvLogLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL; // the reason is printed once below
        try
        {
            using var so = new SessionOptions();
            if (gpu == "TensorRT") so.AppendExecutionProvider_Tensorrt(0);
            so.AppendExecutionProvider_CUDA(0);
            using var session = new InferenceSession(model, so);
            return true;
        }
        catch (Exception e) when (e is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
        {
            why = e.Message.Split('\n', 2)[0];
            return false;
        }
        finally
        {
            env.EnvLogLevel = level;
        }
    }

    [Fact]
    public void Auto_uses_cuda_when_present_and_says_cpu_once_as_information_when_not()
    {
        var model = TestPaths.Data("models", "encoders", "imagebind", "vision.onnx");
        var present = CanOpenSessionWith("CUDA", model, out var why);
        output.WriteLine($"CUDA: {(present ? "present" : "absent — " + why)}");

        var logger = new ListLogger<SessionFactory>();
        var factory = new SessionFactory(new OnnxOptions { ExecutionProvider = "auto" }, logger);
        for (var i = 0; i < 3; i++)
            using (factory.Create(model)) { }
        var line = Assert.Single(logger.Lines);
        Assert.Equal(LogLevel.Information, line.Level);
        if (present)
        {
            Assert.Equal("CUDA", factory.ActiveProvider);
            Assert.Contains("execution provider: CUDA (device 0)", line.Message);
        }
        else
        {
            Assert.Equal("CPU", factory.ActiveProvider);
            Assert.Contains("ONNX Runtime execution provider: CPU (Onnx:ExecutionProvider=auto found no usable CUDA", line.Message);
            Assert.Contains("set it to cpu", line.Message);
        }
    }

    [Fact]
    public void Cpu_is_used_when_configured()
    {
        var logger = new ListLogger<SessionFactory>();
        var factory = new SessionFactory(new OnnxOptions { ExecutionProvider = "cpu" }, logger);
        using (factory.Create(TestPaths.Data("models", "encoders", "imagebind", "vision.onnx"))) { }
        Assert.Equal("CPU", factory.ActiveProvider);
        Assert.Contains("CPU (configured)", Assert.Single(logger.Lines).Message);
    }
}
