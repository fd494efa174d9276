using FreeBind.Consumers.Cli;

namespace FreeBind.Tests.Cli;

/// <summary>Runs a `freebind` command in-process and captures what a user would see.</summary>
internal static class CliRun
{
    private static readonly SemaphoreSlim Console1 = new(1, 1);

    public static Task<(int Code, string Out, string Error)> RunAsync(params string[] args) => RunAsync(FreeBindCli.Build(), args);

    /// <summary>Runs <paramref name="root"/> (e.g. a command built with a test's registrations) with <paramref name="args"/>.</summary>
    public static async Task<(int Code, string Out, string Error)> RunAsync(System.CommandLine.Command root, params string[] args)
    {
        await Console1.WaitAsync();
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        var (previousOut, previousError) = (Console.Out, Console.Error);
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            var code = await root.Parse(args).InvokeAsync();
            return (code, stdout.ToString(), stderr.ToString());
        }
        finally
        {
            Console.SetOut(previousOut);
            Console.SetError(previousError);
            Console1.Release();
        }
    }

    /// <summary>The lines of <paramref name="text"/> that are not log lines (logs start with a time stamp).</summary>
    public static List<string> Lines(string text) =>
        [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).Where(l => !System.Text.RegularExpressions.Regex.IsMatch(l, @"^\d\d:\d\d:\d\d "))];
}

/// <summary>Settings every in-process host and child process of the test run inherits.</summary>
internal static class TestRunEnvironment
{
    /// <summary>File digests go to a folder of this test run, not the user's cache.</summary>
    public static string DigestCache { get; } = Path.Combine(Path.GetTempPath(), "freebind-test-digests-" + Environment.ProcessId);

#pragma warning disable CA2255 // a test assembly: the setting must hold before any test builds a host
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void Initialize() => Environment.SetEnvironmentVariable("Spaces__DigestCache", DigestCache);
#pragma warning restore CA2255
}
