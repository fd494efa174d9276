using System.Diagnostics;

namespace FreeBind.Tests.Services;

/// <summary>
/// The real services the tests use, started by scripts/services.sh (scripts/test.sh runs
/// <c>start</c> and evals <c>env</c>). Missing or unreachable services fail the test with the
/// command that fixes it; nothing is skipped.
/// </summary>
internal static class ServiceEnvironment
{
    public const string StartHint = "start them with: scripts/services.sh start && eval \"$(scripts/services.sh env)\"";

    /// <summary>Npgsql connection string of the test cluster ($FREEBIND_PG).</summary>
    public static string Postgres => Require("FREEBIND_PG");

    /// <summary>Redis endpoint of the test instance ($FREEBIND_REDIS).</summary>
    public static string Redis => Require("FREEBIND_REDIS");

    /// <summary>AMQP URI of the test RabbitMQ node ($FREEBIND_RABBITMQ).</summary>
    public static Uri RabbitMq => new(Require("FREEBIND_RABBITMQ"));

    private static string Require(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"${name} is not set; the tests need the real services: {StartHint}");

    /// <summary>Runs <c>scripts/services.sh {subcommand}</c> (fault tests stop and start one service).</summary>
    public static async Task RunScriptAsync(string subcommand, params string[] args)
    {
        var script = Path.Combine(TestPaths.RepoRoot, "scripts", "services.sh");
        var psi = new ProcessStartInfo("bash", [script, subcommand, .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start bash");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"services.sh {subcommand} exited {process.ExitCode}: {await stderr}{await stdout}");
    }
}
