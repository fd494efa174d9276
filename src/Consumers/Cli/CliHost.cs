using FreeBind.Encoding;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FreeBind.Consumers.Cli;

/// <summary>The composition root shared by every subcommand: appsettings + environment, logs on stderr.</summary>
internal static class CliHost
{
    public static IHost Build(Action<HostApplicationBuilder>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = [],
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        // A service that fails to start is reported by the command in one line (HostedCommand);
        // the host's own "failed to start" record would repeat it with a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        builder.AddEncoding();
        configure?.Invoke(builder);
        var host = builder.Build();
        // Validate the encoding settings now, so a bad setting fails before any work in commands
        // that never start the host (ValidateOnStart covers the ones that do).
        _ = host.Services.GetRequiredService<FreeBind.Encoding.Execution.OnnxOptions>();
        _ = host.Services.GetRequiredService<FreeBind.Encoding.Spaces.SpacesOptions>();
        _ = host.Services.GetRequiredService<FreeBind.Encoding.Preprocessing.PreprocessingOptions>();
        return host;
    }
}
