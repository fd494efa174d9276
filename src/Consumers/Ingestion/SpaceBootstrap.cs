using FreeBind.Encoding;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// Loads the worker's space once: validates the manifest, opens every session, registers the
/// version in Postgres (its embedding table and HNSW index) and activates it when the space has no
/// active version yet. Waits for Postgres if it is not up.
/// </summary>
public sealed partial class SpaceBootstrap(IngestionOptions options, ManifestCatalog manifests, Embedder embedder, SpaceCatalog catalog, ILogger<SpaceBootstrap> logger)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ActiveSpace? _space;

    public async Task<ActiveSpace> GetAsync(CancellationToken cancellationToken)
    {
        if (_space is { } ready) return ready;
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_space is not null) return _space;
            var definition = manifests.Load(options.Space, factors: FactorSelection.Parse(options.Preset, []));
            embedder.Prepare(definition);
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    var version = await catalog.EnsureVersionAsync(definition.Name, definition.Version, definition.Dimension,
                        definition.Manifest.ToCanonicalJson(), cancellationToken: cancellationToken);
                    if (await catalog.GetActiveAsync(definition.Name, cancellationToken) is null)
                        version = await catalog.ActivateAsync(definition.Name, definition.Version, cancellationToken);
                    LogReady(logger, definition.Name, definition.Version, version.TableName);
                    return _space = new ActiveSpace(definition, version);
                }
                catch (Exception e) when (Transient.IsInfrastructure(e) && !cancellationToken.IsCancellationRequested)
                {
                    LogWaiting(logger, attempt, e.Message);
                    await Task.Delay(Transient.Backoff(attempt), cancellationToken);
                }
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Space {Space} {Version} ready (table {Table})")]
    private static partial void LogReady(ILogger logger, string space, string version, string table);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Waiting for Postgres (attempt {Attempt}): {Reason}")]
    private static partial void LogWaiting(ILogger logger, int attempt, string reason);
}
