using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace FreeBind.Persistence.Spaces;

/// <summary>The outcome of a version change; <paramref name="Changed"/> is false when the call was a repeat of one already done.</summary>
/// <param name="Version">The version as it is now.</param>
/// <param name="Changed">False when nothing had to change (a redelivery).</param>
public sealed record StateChange(SpaceVersion Version, bool Changed);

/// <summary>The outcome of a cut-over or rollback.</summary>
/// <param name="Active">The version now served.</param>
/// <param name="Retired">The version it replaced (now retired and retained), or null.</param>
/// <param name="Changed">False when nothing had to change (a redelivery).</param>
public sealed record ActivationResult(SpaceVersion Active, SpaceVersion? Retired, bool Changed);

/// <summary>
/// Moves space versions through their lifecycle (migration 3, docs/querying.md): ready, cut-over,
/// rollback, cancel, fail, drop. Each change is one transaction under a lock on the space row, re-reads
/// the state it starts from, and is idempotent: a repeated call returns <c>Changed = false</c>, and a
/// refused one raises <see cref="SpaceVersionException"/> having changed nothing.
/// </summary>
public sealed class SpaceVersionLifecycle(NpgsqlDataSource dataSource, IOptions<SpaceVersionOptions> options, ILogger<SpaceVersionLifecycle> logger)
{
    private const string RetainUntil = "now() + make_interval(secs => @retention)";

    /// <summary>
    /// Marks a building version ready: its table has a valid HNSW index and run
    /// <paramref name="runId"/> stored a passed verification of it (<see cref="Reembedding.VerificationStore"/>).
    /// A ready version keeps receiving live writes and waits for its cut-over.
    /// </summary>
    /// <param name="version">The version.</param>
    /// <param name="runId">The re-embedding run whose verify gate passed.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="SpaceVersionException">Unknown or ended version, index missing, or no passed verification.</exception>
    public async Task<StateChange> MarkReadyAsync(SpaceVersion version, Guid runId, CancellationToken cancellationToken = default)
    {
        await using var scope = await SpaceScope.BeginAsync(dataSource, version.Space, cancellationToken);
        var v = await scope.RequireAsync(version.Id);
        if (v.State is SpaceVersionState.Ready or SpaceVersionState.Active or SpaceVersionState.Retired)
            return new StateChange(v, false);
        if (!v.HasTable)
            throw EndedError(v);
        if (await SpaceIndexBuilder.IndexStateAsync(scope.Connection, v, cancellationToken, scope.Transaction) != SpaceIndexBuilder.IndexState.Valid)
            throw new SpaceVersionException(SpaceVersionRefusal.IndexMissing,
                $"version {v.Key} has no complete HNSW index yet; build it (SpaceIndexBuilder.BuildAsync) before the verify gate");
        var passed = await scope.ScalarAsync("SELECT passed FROM reembed_verifications WHERE run_id = $1 AND version_id = $2", runId, v.Id);
        if (passed is not true)
            throw new SpaceVersionException(SpaceVersionRefusal.NotVerified, passed is null
                ? $"run {runId} stored no verification of version {v.Key}; run its verify gate first"
                : $"the verification of version {v.Key} by run {runId} did not pass; see `freebind reembed status {runId}`");
        await scope.ExecuteAsync("UPDATE space_versions SET state = 'ready', ready_at = now() WHERE id = $1", v.Id);
        await scope.CommitAsync();
        Log.SpaceVersionChanged(logger, v.Key, "ready");
        return new StateChange(v with { State = SpaceVersionState.Ready }, true);
    }

    /// <summary>
    /// Cut-over: in one transaction the ready <paramref name="version"/> becomes active and the active
    /// one (if any) retired, kept for <see cref="SpaceVersionOptions.Retention"/>. <c>freebind_search</c>
    /// and every reader see the old version or the new one, never both, never an error in between.
    /// </summary>
    /// <param name="version">A ready version.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="SpaceVersionException">The version is unknown, ended, or not ready.</exception>
    public async Task<ActivationResult> CutOverAsync(SpaceVersion version, CancellationToken cancellationToken = default)
    {
        await using var scope = await SpaceScope.BeginAsync(dataSource, version.Space, cancellationToken);
        var v = await scope.RequireAsync(version.Id);
        if (v.State == SpaceVersionState.Active)
            return new ActivationResult(v, null, false);
        if (!v.HasTable)
            throw EndedError(v);
        if (v.State != SpaceVersionState.Ready)
            throw new SpaceVersionException(SpaceVersionRefusal.WrongState, v.State == SpaceVersionState.Building
                ? $"version {v.Key} is still building; it can be cut over once its verify gate passed"
                : $"version {v.Key} is retired; it can come back only by a rollback while it is retained");
        var old = await scope.FindAsync("space = $1 AND state = 'active'", v.Space);
        if (old is not null)
            await scope.ExecuteNamedAsync($"UPDATE space_versions SET state = 'retired', retired_at = now(), retain_until = {RetainUntil} WHERE id = @id",
                ("id", old.Id), ("retention", Retention));
        await scope.ExecuteNamedAsync("UPDATE space_versions SET state = 'active', activated_at = now(), previous_id = @previous WHERE id = @id",
            ("id", v.Id), ("previous", (object?)old?.Id ?? DBNull.Value));
        await scope.CommitAsync();
        Log.SpaceVersionCutOver(logger, v.Space, v.Digest, old?.Digest ?? "(none)");
        return new ActivationResult(v with { State = SpaceVersionState.Active }, old is null ? null : old with { State = SpaceVersionState.Retired }, true);
    }

    /// <summary>
    /// Rollback: in one transaction the version that the active one replaced at its cut-over becomes
    /// active again (it must still be retained), and the active one is retired (kept for the retention
    /// period too). Repeated rollbacks walk back through the cut-overs.
    /// </summary>
    /// <param name="space">Space name.</param>
    /// <param name="from">
    /// The version being rolled back (the saga passes it, so a redelivered rollback is a no-op rather
    /// than a second step back); null for whatever is active now (an operator's one-off command).
    /// </param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="SpaceVersionException">Unknown space, no active version, or no retained previous version.</exception>
    public async Task<ActivationResult> RollbackAsync(string space, SpaceVersion? from = null, CancellationToken cancellationToken = default)
    {
        await using var scope = await SpaceScope.BeginAsync(dataSource, space, cancellationToken);
        var active = await scope.FindDetailsAsync("space = $1 AND state = 'active'", space);
        if (from is not null && active?.Version.Id != from.Id)
        {
            var rolled = await scope.FindDetailsAsync("id = $1", from.Id)
                ?? throw new SpaceVersionException(SpaceVersionRefusal.UnknownVersion, $"space version {from.Id} does not exist");
            if (rolled.Version.State == SpaceVersionState.Retired && rolled.PreviousId is { } p && p == active?.Version.Id)
                return new ActivationResult(active.Version, rolled.Version, false);
            throw new SpaceVersionException(SpaceVersionRefusal.WrongState,
                $"version {rolled.Version.Key} is {SpaceCatalog.Name(rolled.Version.State)}, not active; there is nothing of it to roll back");
        }
        if (active is null)
            throw new SpaceVersionException(SpaceVersionRefusal.NoActiveVersion, $"space \"{space}\" has no active version to roll back");
        var previous = active.PreviousId is { } previousId ? await scope.FindDetailsAsync("id = $1", previousId) : null;
        if (previous is null)
            throw new SpaceVersionException(SpaceVersionRefusal.NothingToRollBack,
                $"version {active.Version.Key} did not replace another version; there is nothing to roll back to");
        if (previous.Version.State != SpaceVersionState.Retired || previous.RetainUntil <= DateTimeOffset.UtcNow)
            throw new SpaceVersionException(SpaceVersionRefusal.NothingToRollBack, previous.Version.State == SpaceVersionState.Retired
                ? $"previous version {previous.Version.Key} is past its retention ({previous.RetainUntil:u}); there is nothing to roll back to"
                : $"previous version {previous.Version.Key} is {SpaceCatalog.Name(previous.Version.State)}; there is nothing to roll back to");
        await scope.ExecuteNamedAsync(
            $"UPDATE space_versions SET state = 'retired', retired_at = now(), retain_until = {RetainUntil} WHERE id = @id AND state = 'active'",
            ("id", active.Version.Id), ("retention", Retention));
        // Decided in SQL as well (the write targets use the database clock); a refusal here rolls the whole change back.
        var changed = await scope.ExecuteAsync(
            "UPDATE space_versions SET state = 'active', activated_at = now(), retired_at = NULL, retain_until = NULL WHERE id = $1 AND retain_until > now()",
            previous.Version.Id);
        if (changed == 0)
            throw new SpaceVersionException(SpaceVersionRefusal.NothingToRollBack,
                $"previous version {previous.Version.Key} is past its retention; there is nothing to roll back to");
        await scope.CommitAsync();
        Log.SpaceVersionRolledBack(logger, space, active.Version.Digest, previous.Version.Digest);
        return new ActivationResult(previous.Version with { State = SpaceVersionState.Active }, active.Version with { State = SpaceVersionState.Retired }, true);
    }

    /// <summary>Cancels a building or ready version: state cancelled, table dropped, the active version untouched.</summary>
    /// <param name="version">The version.</param>
    /// <param name="reason">Why, one sentence (shown by <c>spaces versions</c>).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="SpaceVersionException">The version is unknown, active or retired.</exception>
    public Task<StateChange> CancelAsync(SpaceVersion version, string reason, CancellationToken cancellationToken = default) =>
        EndAsync(version, SpaceVersionState.Cancelled, reason, cancellationToken);

    /// <summary>Fails a building or ready version (its run failed): state failed, table dropped, the active version untouched.</summary>
    /// <param name="version">The version.</param>
    /// <param name="reason">Why, one sentence.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="SpaceVersionException">The version is unknown, active or retired.</exception>
    public Task<StateChange> FailAsync(SpaceVersion version, string reason, CancellationToken cancellationToken = default) =>
        EndAsync(version, SpaceVersionState.Failed, reason, cancellationToken);

    /// <summary>Drops a retired version now, before its retention ends (an operator's explicit command).</summary>
    /// <param name="version">A retired version.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="SpaceVersionException">The version is unknown or not retired.</exception>
    public Task<StateChange> DropAsync(SpaceVersion version, CancellationToken cancellationToken = default) =>
        EndAsync(version, SpaceVersionState.Dropped, "dropped by an operator before its retention ended", cancellationToken);

    /// <summary>
    /// Drops every retired version whose retention has ended (any space): state dropped, table gone.
    /// Run by an explicit command or a schedule; safe to run from several processes at once.
    /// </summary>
    /// <param name="cancellationToken">Cancels the call between versions.</param>
    /// <returns>The versions dropped by this call.</returns>
    public async Task<IReadOnlyList<SpaceVersion>> DropExpiredAsync(CancellationToken cancellationToken = default)
    {
        var expired = new List<SpaceVersion>();
        await using (var cmd = dataSource.CreateCommand($"SELECT {SpaceVersionRows.Columns} FROM space_versions WHERE state = 'retired' AND retain_until <= now() ORDER BY id"))
        await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken))
            while (await reader.ReadAsync(cancellationToken))
                expired.Add(SpaceVersionRows.Read(reader));
        var dropped = new List<SpaceVersion>();
        foreach (var version in expired)
        {
            var result = await EndAsync(version, SpaceVersionState.Dropped, "its retention ended", cancellationToken, expiredOnly: true);
            if (result.Changed)
                dropped.Add(result.Version);
        }
        return dropped;
    }

    internal static SpaceVersionException EndedError(SpaceVersion version) => new(SpaceVersionRefusal.Ended,
        $"version {version.Key} is {SpaceCatalog.Name(version.State)} and its vectors are gone; publish its manifest again to rebuild it");

    /// <summary>The error for a version whose table was found missing, with its state as stored now.</summary>
    internal static async Task<SpaceVersionException> VanishedAsync(NpgsqlDataSource dataSource, SpaceVersion version)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        var now = await SpaceVersionRows.FindAsync(connection, null, "id = $1", [version.Id], CancellationToken.None);
        return EndedError(now is { HasTable: false } ? now : version with { State = SpaceVersionState.Dropped });
    }

    private double Retention => options.Value.Retention.TotalSeconds;

    private async Task<StateChange> EndAsync(
        SpaceVersion version, SpaceVersionState end, string reason, CancellationToken ct, bool expiredOnly = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        SpaceVersion v;
        var changed = false;
        await using (var scope = await SpaceScope.BeginAsync(dataSource, version.Space, ct))
        {
            v = await scope.RequireAsync(version.Id);
            if (expiredOnly && v.State != SpaceVersionState.Retired)
                return new StateChange(v, false);
            if (v.HasTable)
            {
                var allowed = end == SpaceVersionState.Dropped
                    ? v.State == SpaceVersionState.Retired
                    : v.State is SpaceVersionState.Building or SpaceVersionState.Ready;
                if (!allowed)
                    throw new SpaceVersionException(SpaceVersionRefusal.WrongState, (end, v.State) switch
                    {
                        (_, SpaceVersionState.Active) => $"version {v.Key} is active; roll it back first (freebind reembed rollback {v.Space})",
                        (SpaceVersionState.Dropped, _) => $"version {v.Key} is {SpaceCatalog.Name(v.State)}, not retired; cancel it instead",
                        _ => $"version {v.Key} is retired; it is dropped when its retention ends, or now by an explicit drop",
                    });
                var where = expiredOnly ? " AND retain_until <= now()" : "";
                if (await scope.ExecuteNamedAsync(
                        $"UPDATE space_versions SET state = @state, ended_at = now(), end_reason = @reason WHERE id = @id{where}",
                        ("id", v.Id), ("state", SpaceCatalog.Name(end)), ("reason", reason)) > 0)
                {
                    await scope.ExecuteAsync($"DROP TABLE IF EXISTS {SpaceVersionRows.Quote(v.TableName)}");
                    await scope.CommitAsync();
                    v = v with { State = end };
                    changed = true;
                    Log.SpaceVersionEnded(logger, v.Key, SpaceCatalog.Name(end), reason);
                }
            }
        }
        if (!v.HasTable)
            await DeleteVersionRowsAsync(v, ct);
        return new StateChange(v, changed);
    }

    // Tags of an ended version, after its table went (a short transaction of its own so the drop
    // holds its lock briefly); repeated by every later call, so a crash in between leaves nothing.
    private async Task DeleteVersionRowsAsync(SpaceVersion version, CancellationToken ct)
    {
        await using var batch = dataSource.CreateBatch();
        foreach (var sql in new[] { "DELETE FROM media_tags WHERE space_version_id = $1", "DELETE FROM tag_label_embeddings WHERE space_version_id = $1" })
        {
            var command = new NpgsqlBatchCommand(sql);
            command.Parameters.Add(new() { Value = version.Id });
            batch.BatchCommands.Add(command);
        }
        await batch.ExecuteNonQueryAsync(ct);
    }
}
