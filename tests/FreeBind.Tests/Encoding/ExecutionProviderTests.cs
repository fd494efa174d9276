using FreeBind.Encoding.Execution;
using Microsoft.Extensions.Logging;

namespace FreeBind.Tests.Encoding;

/// <summary>No GPU here: the CUDA attempt must fall back to CPU with exactly one clear line.</summary>
public sealed class ExecutionProviderTests
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
    [InlineData("auto", "CUDA")]
    [InlineData("cuda", "CUDA")]
    [InlineData("tensorrt", "TensorRT")]
    public void Gpu_attempt_falls_back_to_cpu_with_one_log_line(string configured, string gpu)
    {
        var logger = new ListLogger<SessionFactory>();
        var factory = new SessionFactory(new OnnxOptions { ExecutionProvider = configured }, logger);
        var model = TestPaths.Data("models", "encoders", "imagebind", "vision.onnx");
        using (factory.Create(model)) { }
        using (factory.Create(model)) { }
        Assert.Equal("CPU", factory.ActiveProvider);
        var line = Assert.Single(logger.Lines);
        Assert.Equal(LogLevel.Warning, line.Level);
        Assert.Contains($"CPU — {gpu} (Onnx:ExecutionProvider={configured}) is unavailable", line.Message);
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
