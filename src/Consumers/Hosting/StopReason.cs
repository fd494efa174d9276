using System.Reflection;
using System.Text.RegularExpressions;
using Confluent.Kafka;
using FreeBind.Consumers.Kafka;
using FreeBind.Consumers.Spaces;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence;
using Microsoft.Extensions.Options;
using Npgsql;

namespace FreeBind.Consumers.Hosting;

/// <summary>
/// The one sentence a user reads when a command ends or the worker stops on a failure: the same
/// wording for <c>run</c> (its fatal log line) and the other commands (their <c>error:</c> line).
/// </summary>
public static partial class StopReason
{
    /// <summary>One sentence for a failure a user can act on (a service down or refusing, a model folder that does not fit), or null for one that is a bug.</summary>
    public static string? Describe(Exception e) => e switch
    {
        DatabaseUnavailableException or TargetUnavailableException or KafkaUnavailableException or Demo.DemoException => OneLine(e.Message),
        OptionsValidationException o => string.Join("; ", o.Failures.Select(f => Setting(o.OptionsType, f))),
        InvalidOperationException when Unconvertible().Match(e.Message) is { Success: true } m =>
            $"setting {m.Groups["path"].Value} is '{m.Groups["value"].Value}', which is not {Kind(m.Groups["type"].Value)}",
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

    // "DataAnnotation validation failed for 'IngestionOptions' members: 'MaxInFlight' with the error:
    // 'The field MaxInFlight must be between 1 and 1000000.'." names a class and a property; a user
    // knows the setting: Ingestion:MaxInFlight must be between 1 and 1000000.
    private static string Setting(Type options, string failure)
    {
        var m = DataAnnotationFailure().Match(failure);
        if (!m.Success) return OneLine(failure);
        var member = m.Groups["member"].Value;
        var section = options.GetField("Section", BindingFlags.Public | BindingFlags.Static)?.GetRawConstantValue() as string;
        var setting = section is null ? member : $"{section}:{member}";
        var error = m.Groups["error"].Value.TrimEnd('.');
        if (error.StartsWith($"The field {member} ", StringComparison.Ordinal)) return $"{setting} {error[$"The field {member} ".Length..]}";
        if (error == $"The {member} field is required") return $"{setting} is required";
        return $"{setting}: {OneLine(error)}";
    }

    private static string Kind(string type) => type switch
    {
        "System.Int32" or "System.Int64" => "a whole number in range",
        "System.Double" or "System.Single" => "a number",
        "System.Boolean" => "true or false",
        "System.TimeSpan" => "a duration such as 00:01:00",
        _ => $"a {type}",
    };

    [GeneratedRegex("^DataAnnotation validation failed for '[^']*' members: '(?<member>[^']*)' with the error: '(?<error>.*)'\\.$", RegexOptions.Singleline)]
    private static partial Regex DataAnnotationFailure();

    // The configuration binder's message for a value it cannot convert (it names the setting's path).
    [GeneratedRegex("^Failed to convert configuration value '(?<value>.*)' at '(?<path>[^']*)' to type '(?<type>[^']*)'\\.$", RegexOptions.Singleline)]
    private static partial Regex Unconvertible();
}
