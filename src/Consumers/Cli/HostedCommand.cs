using Confluent.Kafka;
using FreeBind.Consumers.Spaces;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence;
using Npgsql;

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
        catch (Exception e) when (Describe(e) is { } message)
        {
            await Console.Error.WriteLineAsync("error: " + message);
            return 1;
        }
    }

    /// <summary>One sentence for a failure a user can act on, or null for one that is a bug.</summary>
    public static string? Describe(Exception e) => e switch
    {
        DatabaseUnavailableException or TargetUnavailableException => e.Message,
        PostgresException p => $"Postgres refused: {p.MessageText} ({p.SqlState})",
        NpgsqlException n => $"Postgres: {n.Message}",
        KafkaException k => $"Kafka: {k.Error.Reason}",
        SpaceValidationException v => Summary(v),
        _ => null,
    };

    /// <summary>A space's problems in one sentence: the first, and how many more.</summary>
    public static string Summary(SpaceValidationException e) =>
        e.Errors.Count switch
        {
            0 => e.Message,
            1 => e.Errors[0],
            _ when e.Errors.All(x => x.StartsWith("missing file", StringComparison.Ordinal)) =>
                $"the model folder lacks {e.Errors.Count} files the space needs (first: {e.Errors[0]}); pass --models or set Spaces__ModelRoot",
            _ => $"{e.Errors[0]} (and {e.Errors.Count - 1} more problems; `freebind spaces validate` lists them)",
        };
}
