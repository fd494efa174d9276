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
        builder.AddEncoding();
        configure?.Invoke(builder);
        var host = builder.Build();
        // Resolve options now so a bad setting fails before any work (ValidateOnStart runs on host start).
        host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<FreeBind.Encoding.Execution.OnnxOptions>>();
        return host;
    }
}
