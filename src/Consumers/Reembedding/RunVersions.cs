using System.Collections.Concurrent;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Spaces;

namespace FreeBind.Consumers.Reembedding;

/// <summary>A run's version: the stored row and its definition as this machine loads it.</summary>
/// <param name="Version">The registered version.</param>
/// <param name="Definition">Its definition from the stored manifest and this machine's model files.</param>
public sealed record RunVersion(SpaceVersion Version, SpaceDefinition Definition);

/// <summary>A step of a run cannot be carried out (the saga records the reason and fails the run).</summary>
/// <param name="message">One sentence an operator can act on.</param>
public sealed class RunStepException(string message) : Exception(message);

/// <summary>
/// Loads the version a run builds from its stored manifest (the effective one, factors included)
/// with this machine's model files under Spaces:ModelRoot, and checks that they reproduce the
/// registered digest: vectors written by a machine with other files would not be the version's.
/// </summary>
public sealed class RunVersions(SpaceCatalog catalog, ManifestCatalog manifests)
{
    private readonly ConcurrentDictionary<(int, string), SpaceDefinition> _definitions = new();

    /// <summary>The version <paramref name="digest"/> of <paramref name="space"/>, loaded.</summary>
    /// <param name="space">Space name.</param>
    /// <param name="digest">The version's digest.</param>
    /// <param name="cancellationToken">Cancels the reads.</param>
    /// <exception cref="RunStepException">Not registered, or not loadable here.</exception>
    public async Task<RunVersion> LoadAsync(string space, string digest, CancellationToken cancellationToken)
    {
        var version = await catalog.GetAsync(space, digest, cancellationToken)
            ?? throw new RunStepException($"version {digest} of space '{space}' is not registered; publish it first (freebind spaces publish)");
        if (_definitions.TryGetValue((version.Id, digest), out var known)) return new RunVersion(version, known);
        var manifest = await catalog.GetManifestAsync(version.Id, cancellationToken)
            ?? throw new RunStepException($"version {digest} of space '{space}' has no stored manifest");
        SpaceDefinition definition;
        try
        {
            definition = SpaceLoader.Build(SpaceManifest.Parse(manifest, $"space version v{version.Id}"), Path.GetFullPath(manifests.Options.ModelRoot));
        }
        catch (SpaceValidationException e)
        {
            throw new RunStepException($"version v{version.Id} of '{space}' cannot be loaded here: {e.Errors[0]} (deploy its model files under Spaces:ModelRoot)");
        }
        if (definition.Version != digest)
            throw new RunStepException($"the model files under {definition.ModelRoot} give version {definition.Version}, not the registered {digest}; deploy the version's files");
        return new RunVersion(version, _definitions.GetOrAdd((version.Id, digest), definition));
    }
}
