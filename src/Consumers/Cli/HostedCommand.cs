using FreeBind.Consumers.Hosting;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// For the commands that talk to services (<c>run</c>, <c>migrate</c>, <c>tags load</c>, <c>demo</c>):
/// a service that is down or refuses, or a model folder that does not fit, ends the command with
/// one sentence on stderr and exit code 1, never a stack trace.
/// </summary>
internal static class HostedCommand
{
    public static async Task<int> Guard(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e) when (StopReason.Describe(e) is { } message)
        {
            await Console.Error.WriteLineAsync("error: " + message);
            return 1;
        }
    }
}
