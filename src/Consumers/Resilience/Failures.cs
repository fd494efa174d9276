using System.Net.Sockets;
using Npgsql;

namespace FreeBind.Consumers.Resilience;

/// <summary>What a failure means for the work that hit it.</summary>
public enum FailureKind
{
    /// <summary>The infrastructure's (Postgres unreachable, failing over): retry until it returns.</summary>
    Transient,

    /// <summary>A space version's table vanished (the version was dropped): re-read the write targets, then retry.</summary>
    StaleTarget,

    /// <summary>Postgres refused this item's data for good (a data or constraint error, a trigger): the item is dead-lettered.</summary>
    ItemRefused,

    /// <summary>Postgres refused the statement for a reason that is no item's (privileges, schema): retry, loudly; an operator must act.</summary>
    Deployment,

    /// <summary>Anything nobody foresaw: retried a bounded number of times, then dead-lettered as <c>internal</c>.</summary>
    Unforeseen,
}

/// <summary>Classifies failures of storage and processing, using Npgsql's own transient classification.</summary>
public static class Failures
{
    /// <summary>The kind of <paramref name="exception"/> (its inner exceptions are looked at for Npgsql's).</summary>
    public static FailureKind Classify(Exception exception) => exception switch
    {
        PostgresException { SqlState: PostgresErrorCodes.UndefinedTable } => FailureKind.StaleTarget,
        PostgresException p when p.IsTransient => FailureKind.Transient,
        PostgresException p when IsItemSpecific(p.SqlState) => FailureKind.ItemRefused,
        PostgresException => FailureKind.Deployment,
        NpgsqlException n => n.IsTransient ? FailureKind.Transient : FailureKind.Deployment,
        SocketException or TimeoutException => FailureKind.Transient,
        IOException { InnerException: SocketException } => FailureKind.Transient,
        { InnerException: { } inner } when inner is NpgsqlException or SocketException or TimeoutException => Classify(inner),
        _ => FailureKind.Unforeseen,
    };

    // Errors a statement raises because of one row's values: data exceptions (22), integrity
    // violations (23), program limits such as an index row too large (54), and RAISE from a trigger (P0).
    private static bool IsItemSpecific(string sqlState) => sqlState.Length == 5 && sqlState[..2] is "22" or "23" or "54" or "P0";

    /// <summary>One sentence for a dead letter: the SQLSTATE and Postgres's own message for a refusal, else the exception type and message.</summary>
    public static string Describe(Exception exception) => exception switch
    {
        PostgresException p => $"Postgres refused the item: {p.SqlState}: {p.MessageText}",
        _ => $"{exception.GetType().FullName}: {exception.Message}",
    };
}
