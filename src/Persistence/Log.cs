using Microsoft.Extensions.Logging;

namespace FreeBind.Persistence;

/// <summary>Source-generated log messages of the persistence layer (event ids 4000–4099).</summary>
internal static partial class Log
{
    [LoggerMessage(4000, LogLevel.Information, "Applying migration {Version} ({Name})")]
    public static partial void ApplyingMigration(ILogger logger, int version, string name);

    [LoggerMessage(4001, LogLevel.Information, "Database schema at version {Version}; {Applied} migration(s) applied now")]
    public static partial void SchemaReady(ILogger logger, int version, int applied);

    [LoggerMessage(4002, LogLevel.Warning, "Waiting for Postgres (attempt {Attempt}): {Reason}")]
    public static partial void WaitingForDatabase(ILogger logger, int attempt, string reason);

    [LoggerMessage(4010, LogLevel.Information, "Space {Space} version {Digest} (dim {Dimension}) stored in {Table}")]
    public static partial void SpaceVersionEnsured(ILogger logger, string space, string digest, int dimension, string table);

    [LoggerMessage(4011, LogLevel.Information, "Space {Space} version {Digest} is now active")]
    public static partial void SpaceVersionActivated(ILogger logger, string space, string digest);

    [LoggerMessage(4012, LogLevel.Information, "Space version {Version} is now {State}")]
    public static partial void SpaceVersionChanged(ILogger logger, string version, string state);

    [LoggerMessage(4013, LogLevel.Information, "Space {Space} cut over to version {Digest} (replacing {Previous}, now retired)")]
    public static partial void SpaceVersionCutOver(ILogger logger, string space, string digest, string previous);

    [LoggerMessage(4014, LogLevel.Warning, "Space {Space} rolled back from version {From} to {To}")]
    public static partial void SpaceVersionRolledBack(ILogger logger, string space, string from, string to);

    [LoggerMessage(4015, LogLevel.Information, "Space version {Version} is {State} and its table dropped: {Reason}")]
    public static partial void SpaceVersionEnded(ILogger logger, string version, string state, string reason);

    [LoggerMessage(4016, LogLevel.Information, "HNSW index of {Version} ({Table}) built in {Seconds:F1} s")]
    public static partial void IndexBuilt(ILogger logger, string version, string table, double seconds);

    [LoggerMessage(4017, LogLevel.Information, "Retired version {Version} is past its retention: dropped (table {Table})")]
    public static partial void RetainedVersionDropped(ILogger logger, string version, string table);

    [LoggerMessage(4018, LogLevel.Warning, "Dropping retired versions past their retention failed, trying again at the next interval: {Reason}")]
    public static partial void SweepFailed(ILogger logger, string reason);

    [LoggerMessage(4020, LogLevel.Debug, "Wrote {Items} item(s) to {Tables} in {ElapsedMs:F1} ms")]
    public static partial void BatchWritten(ILogger logger, int items, string tables, double elapsedMs);

    [LoggerMessage(4021, LogLevel.Debug, "Deleted {Count} media item(s) with their vectors, atoms and tags")]
    public static partial void MediaDeleted(ILogger logger, int count);

    [LoggerMessage(4030, LogLevel.Warning, "Redis cache unavailable ({Reason}), continuing without cache until it returns")]
    public static partial void CacheDown(ILogger logger, string reason);

    [LoggerMessage(4031, LogLevel.Information, "Redis cache available again")]
    public static partial void CacheRecovered(ILogger logger);

    [LoggerMessage(4032, LogLevel.Warning, "Cached value for {Key} has {Bytes} bytes, expected {Expected}; ignored")]
    public static partial void CacheValueMalformed(ILogger logger, string key, int bytes, int expected);

    [LoggerMessage(4040, LogLevel.Debug, "Backfill into {Version}: {Written} written, {Present} already there, {Superseded} superseded by live writes")]
    public static partial void BackfillWritten(ILogger logger, string version, int written, int present, int superseded);
}
