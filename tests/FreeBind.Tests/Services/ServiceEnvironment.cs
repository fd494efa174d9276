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

    /// <summary>
    /// How long a services.sh call may take before the test gives up on it. The script bounds its own
    /// waits and says which one ran out (Redis and Postgres 60 s each; RabbitMQ retries for minutes,
    /// and every rabbitmqctl call boots an Erlang VM, seconds each on a loaded 2-core machine), so
    /// this only catches a script that hangs: it must never be the first deadline to expire.
    /// </summary>
    private static readonly TimeSpan ScriptDeadline = TimeSpan.FromMinutes(15);

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
        var took = Stopwatch.StartNew();
        using var timeout = new CancellationTokenSource(ScriptDeadline);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            // Not left running: a late stop or start would hit whatever test runs next.
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"services.sh {subcommand} {string.Join(' ', args)} did not finish in {ScriptDeadline.TotalMinutes:F0} min: {await stderr}{await stdout}");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"services.sh {subcommand} exited {process.ExitCode} after {took.Elapsed.TotalSeconds:F0} s: {await stderr}{await stdout}");
    }
}
