using FreeBind.Consumers.Ingestion;
using FreeBind.Consumers.Resilience;
using FreeBind.Encoding;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Spaces;

/// <summary>
/// Space-version routing: which versions of the worker's space an item is written into. The set is
/// read from <c>space_versions</c> (<see cref="SpaceCatalog.GetWriteTargetsAsync"/>), each version's
/// definition rebuilt from its stored manifest and this worker's model files, and replaced whole by
/// <see cref="RefreshAsync"/> (called on a Postgres notification, on a poll, or when a table vanished).
/// </summary>
/// <remarks>
/// A version this worker cannot load (its model files are missing or differ from the ones it was
/// registered with) is refused with one log line naming the version and the remedy; the worker goes
/// on with the others unless the refused version is the active one, which stops it.
/// </remarks>
public sealed partial class WriteTargets(
    IOptions<IngestionOptions> options, IOptions<PersistenceOptions> persistence, ManifestCatalog manifests, Embedder embedder,
    SpaceCatalog catalog, Retries retries, IngestionMetrics metrics, ILogger<WriteTargets> logger)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<int, SpaceDefinition> _definitions = [];
    private readonly HashSet<(int, string)> _refused = [];
    private TargetSet? _current;

    /// <summary>The current set; valid after <see cref="StartAsync"/>.</summary>
    public TargetSet Current => Volatile.Read(ref _current) ?? throw new InvalidOperationException("write targets are not loaded yet");

    /// <summary>The name of the space the worker serves; valid after <see cref="StartAsync"/>.</summary>
    public string Space => _space ?? throw new InvalidOperationException("write targets are not loaded yet");

    private string? _space;

    /// <summary>
    /// Loads the configured manifest; when its space has no active version, registers and activates
    /// it (a fresh database); then reads the write targets. Waits for Postgres for at most
    /// <see cref="PersistenceOptions.StartupTimeout"/>.
    /// </summary>
    /// <exception cref="SpaceValidationException">The configured manifest or its files are invalid.</exception>
    /// <exception cref="TargetUnavailableException">The active version cannot be loaded by this worker.</exception>
    /// <exception cref="DatabaseUnavailableException">Postgres stayed unreachable.</exception>
    public async Task<TargetSet> StartAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _current) is { } loaded) return loaded;
        var o = options.Value;
        var configured = manifests.Load(o.Space, factors: FactorSelection.Parse(o.Preset, []));
        _space = configured.Name;
        var p = persistence.Value;
        await retries.PostgresStartupAsync(p, async token =>
        {
            if (await catalog.GetActiveAsync(configured.Name, token) is { } active)
            {
                if (active.Digest != configured.Version)
                    LogConfiguredNotActive(logger, configured.Name, configured.Version, active.Digest);
                return active;
            }
            embedder.Prepare(configured);
            await catalog.EnsureVersionAsync(configured.Name, configured.Version, configured.Dimension, configured.Manifest.ToCanonicalJson(), cancellationToken: token);
            var version = await catalog.ActivateAsync(configured.Name, configured.Version, token);
            LogRegistered(logger, configured.Name, configured.Version, version.TableName);
            return version;
        }, cancellationToken);
        return await retries.PostgresStartupAsync(p, RefreshAsync, cancellationToken);
    }

    /// <summary>Re-reads the targets and swaps the set when it changed; returns the set in force.</summary>
    /// <exception cref="TargetUnavailableException">The active version cannot be loaded by this worker.</exception>
    public async Task<TargetSet> RefreshAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var stored = await catalog.GetWriteTargetsAsync(Space, cancellationToken);
            var current = Volatile.Read(ref _current);
            var targets = new List<SpaceTarget>();
            foreach (var target in stored)
            {
                if (Load(target) is { } definition) targets.Add(new SpaceTarget(target.Version, definition));
                else if (target.Version.State == SpaceVersionState.Active)
                    throw new TargetUnavailableException(
                        $"the active version v{target.Version.Id} of space '{target.Version.Space}' ({target.Version.Digest}) cannot be loaded by this worker; " +
                        $"deploy its model files under Spaces:ModelRoot ({manifests.Options.ModelRoot}) or roll the space back");
            }
            // Nothing to write at all (every version ended or refused): stop rather than dead-letter
            // every event; a restart registers the configured manifest again.
            if (targets.Count == 0)
                throw new TargetUnavailableException(
                    $"space '{Space}' has no version this worker can write (none active, building, ready or retained); restart the worker to register its configured manifest, or publish a version");
            if (current is not null && Same(current.Targets, targets)) return current;
            var next = new TargetSet(Space, (current?.Generation ?? 0) + 1, targets);
            Volatile.Write(ref _current, next);
            metrics.TargetsChanged();
            LogTargets(logger, next.Space, next.Describe());
            return next;
        }
        finally
        {
            _gate.Release();
        }
    }

    private static bool Same(IReadOnlyList<SpaceTarget> a, List<SpaceTarget> b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.Version == p.Second.Version);

    // The stored manifest is the effective one (factors included); with this worker's model files it
    // must reproduce the stored digest, else the vectors would not be the version's.
    private SpaceDefinition? Load(SpaceWriteTarget target)
    {
        var version = target.Version;
        if (_definitions.TryGetValue(version.Id, out var known)) return known;
        string reason;
        try
        {
            var definition = SpaceLoader.Build(SpaceManifest.Parse(target.ManifestJson, $"space version v{version.Id}"),
                Path.GetFullPath(manifests.Options.ModelRoot));
            if (definition.Version == version.Digest && definition.Dimension == version.Dimension)
            {
                embedder.Prepare(definition);
                _refused.Remove((version.Id, version.Digest));
                return _definitions[version.Id] = definition;
            }
            reason = $"its model files under {definition.ModelRoot} give digest {definition.Version}, not the registered {version.Digest}";
        }
        catch (SpaceValidationException e)
        {
            reason = e.Errors.Count == 1 ? e.Errors[0] : $"{e.Errors[0]} (and {e.Errors.Count - 1} more problems)";
        }
        catch (SpaceChoiceException e)
        {
            // The model root holds none of the version's files (a version of other models, or the wrong folder).
            reason = e.Message;
        }
        if (_refused.Add((version.Id, version.Digest)))
            LogRefused(logger, version.Id, version.Space, version.State.ToString().ToLowerInvariant(), reason);
        return null;
    }

    [LoggerMessage(EventId = 5000, Level = LogLevel.Information, Message = "Space {Space} had no active version: registered and activated {Version} (table {Table})")]
    private static partial void LogRegistered(ILogger logger, string space, string version, string table);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information,
        Message = "Space {Space} is served by version {Active}; this worker's manifest gives {Configured}, which is not registered (publish it with a re-embedding)")]
    private static partial void LogConfiguredNotActive(ILogger logger, string space, string configured, string active);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Write targets of {Space}: {Targets}")]
    private static partial void LogTargets(ILogger logger, string space, string targets);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Error,
        Message = "Refusing write target v{Id} of {Space} ({State}): {Reason}; its items are not written there until this worker can load it (deploy its model files under Spaces:ModelRoot)")]
    private static partial void LogRefused(ILogger logger, int id, string space, string state, string reason);
}
