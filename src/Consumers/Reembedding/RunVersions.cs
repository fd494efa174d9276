using System.Collections.Concurrent;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Spaces;

namespace FreeBind.Consumers.Reembedding;

/// <summary>A run's version: the stored row and its definition as this machine loads it for fusion.</summary>
/// <param name="Version">The registered version.</param>
/// <param name="Definition">
/// Its definition loaded for fusion only (<see cref="SpaceUse.Fuse"/>): the projector files of this
/// machine, the encoders' digests from the version's stored document. Enough to re-fuse stored atoms;
/// <see cref="RunVersions.ForEncoding"/> gives the definition that can encode.
/// </param>
public sealed record RunVersion(SpaceVersion Version, SpaceDefinition Definition);

/// <summary>A step of a run cannot be carried out (the saga records the reason and fails the run).</summary>
/// <param name="message">One sentence an operator can act on.</param>
public sealed class RunStepException(string message) : Exception(message);

/// <summary>
/// Loads the version a run builds with this machine's files under Spaces:ModelRoot, and checks that
/// they reproduce the registered digest: vectors written by a machine with other files would not be
/// the version's. A re-fusion needs no encoder, so the version is first loaded for fusion only (from
/// the document <c>spaces publish</c> stored: projector files read, encoders' digests from the
/// document; without a document, from the files' digest cache); the encoders are loaded only when an
/// item must be encoded (a changed expert, the verify gate's recompute, tag labels not yet embedded).
/// </summary>
public sealed class RunVersions(SpaceCatalog catalog, VersionDocuments documents, ManifestCatalog manifests)
{
    private readonly ConcurrentDictionary<(int, string), SpaceDefinition> _fusion = new();
    private readonly ConcurrentDictionary<(int, string), SpaceDefinition> _encoding = new();

    /// <summary>The version <paramref name="digest"/> of <paramref name="space"/>, loaded for fusion.</summary>
    /// <param name="space">Space name.</param>
    /// <param name="digest">The version's digest.</param>
    /// <param name="cancellationToken">Cancels the reads.</param>
    /// <exception cref="RunStepException">Not registered, or not loadable here.</exception>
    public async Task<RunVersion> LoadAsync(string space, string digest, CancellationToken cancellationToken)
    {
        var version = await catalog.GetAsync(space, digest, cancellationToken)
            ?? throw new RunStepException($"version {digest} of space '{space}' is not registered; publish it first (freebind spaces publish)");
        if (_fusion.TryGetValue((version.Id, digest), out var known)) return new RunVersion(version, known);
        var root = Path.GetFullPath(manifests.Options.ModelRoot);
        SpaceDefinition definition;
        try
        {
            if (await documents.GetAsync(version.Id, cancellationToken) is { } document)
                definition = SpaceLoader.LoadStored(document, root, manifests.Digests);
            else
            {
                var manifest = await catalog.GetManifestAsync(version.Id, cancellationToken)
                    ?? throw new RunStepException($"version {digest} of space '{space}' has no stored manifest");
                definition = SpaceLoader.Build(SpaceManifest.Parse(manifest, $"space version v{version.Id}"), root,
                    new SpaceLoadOptions { Use = SpaceUse.Fuse, Digests = manifests.Digests });
            }
        }
        catch (SpaceValidationException e)
        {
            throw new RunStepException($"version v{version.Id} of '{space}' cannot be loaded here: {e.Errors[0]} (deploy its projector files under Spaces:ModelRoot)");
        }
        catch (SpaceChoiceException e)
        {
            // The model root is missing or holds none of the version's files: no retry can help.
            throw new RunStepException($"version v{version.Id} of '{space}' cannot be loaded here: {e.Errors[0].Message}");
        }
        Check(version, definition);
        return new RunVersion(version, _fusion.GetOrAdd((version.Id, digest), definition));
    }

    /// <summary>The run's version loaded to encode media (every encoder and tokenizer file of this machine read and checked).</summary>
    /// <param name="target">The version, as <see cref="LoadAsync"/> gave it.</param>
    /// <exception cref="RunStepException">This machine lacks the version's encoder files (or has others).</exception>
    public SpaceDefinition ForEncoding(RunVersion target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var version = target.Version;
        if (_encoding.TryGetValue((version.Id, version.Digest), out var known)) return known;
        SpaceDefinition definition;
        try
        {
            definition = SpaceLoader.Build(target.Definition.Manifest, target.Definition.ModelRoot, new SpaceLoadOptions { Digests = manifests.Digests });
        }
        catch (SpaceValidationException e)
        {
            throw new RunStepException(
                $"version v{version.Id} of '{version.Space}' needs its encoders here (an expert's model changed, or the verify gate recomputes items from content), " +
                $"and they cannot be loaded: {e.Errors[0]} (deploy its model files under Spaces:ModelRoot)");
        }
        catch (SpaceChoiceException e)
        {
            throw new RunStepException(
                $"version v{version.Id} of '{version.Space}' needs its encoders here (an expert's model changed, or the verify gate recomputes items from content), " +
                $"and they cannot be loaded: {e.Errors[0].Message}");
        }
        Check(version, definition);
        return _encoding.GetOrAdd((version.Id, version.Digest), definition);
    }

    private static void Check(SpaceVersion version, SpaceDefinition definition)
    {
        if (definition.Version != version.Digest)
            throw new RunStepException($"the model files under {definition.ModelRoot} give version {definition.Version}, not the registered {version.Digest}; deploy the version's files");
    }
}
