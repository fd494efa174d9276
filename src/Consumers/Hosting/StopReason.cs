using Confluent.Kafka;
using FreeBind.Consumers.Spaces;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence;
using Npgsql;

namespace FreeBind.Consumers.Hosting;

/// <summary>
/// The one sentence a user reads when a command ends or the worker stops on a failure: the same
/// wording for <c>run</c> (its fatal log line) and the other commands (their <c>error:</c> line).
/// </summary>
public static class StopReason
{
    /// <summary>One sentence for a failure a user can act on (a service down or refusing, a model folder that does not fit), or null for one that is a bug.</summary>
    public static string? Describe(Exception e) => e switch
    {
        DatabaseUnavailableException or TargetUnavailableException or Demo.DemoException => OneLine(e.Message),
        PostgresException p => $"Postgres refused: {OneLine(p.MessageText)} ({p.SqlState})",
        NpgsqlException n => $"Postgres: {OneLine(n.Message)}",
        KafkaException k => $"Kafka: {OneLine(k.Error.Reason)}",
        SpaceValidationException v => Summary(v),
        _ => null,
    };

    /// <summary>One sentence for any failure: <see cref="Describe"/>, or the type and message of one nobody foresaw.</summary>
    public static string Of(Exception e) => Describe(e) ?? e switch
    {
        SpaceChoiceException c => OneLine(c.Message),
        _ => $"an unforeseen {e.GetType().Name}: {OneLine(e.Message)}",
    };

    /// <summary>A space's problems in one sentence: the first, and how many more.</summary>
    public static string Summary(SpaceValidationException e) =>
        e.Errors.Count switch
        {
            0 => OneLine(e.Message),
            1 => OneLine(e.Errors[0]),
            _ when e.Errors.All(x => x.StartsWith("missing file", StringComparison.Ordinal)) =>
                $"the model folder lacks {e.Errors.Count} files the space needs (first: {e.Errors[0]}); pass --models or set Spaces__ModelRoot",
            _ => $"{OneLine(e.Errors[0])} (and {e.Errors.Count - 1} more problems; `freebind spaces validate` lists them)",
        };

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");
}
