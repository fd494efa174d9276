using FreeBind.Encoding;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Experts;
using FreeBind.Encoding.Fusion;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using Microsoft.Extensions.Logging.Abstractions;

namespace FreeBind.Tests;

/// <summary>
/// One set of ONNX sessions shared by the tests of a collection: projector mixtures compile once
/// per set of files and are reused by every space and factor choice.
/// </summary>
public sealed class EngineFixture : IAsyncLifetime
{
    public EngineFixture()
    {
        Sessions = new SessionFactory(new OnnxOptions { ExecutionProvider = "cpu", MaxWaitMs = 1 }, NullLogger<SessionFactory>.Instance);
        Fusion = new FusionEngine(Sessions, NullLogger<FusionEngine>.Instance);
        Encoders = new ExpertEncoders(Sessions);
        Embedder = new Embedder(Encoders, Fusion, new PreprocessingOptions());
    }

    public SessionFactory Sessions { get; }
    public FusionEngine Fusion { get; }
    public ExpertEncoders Encoders { get; }
    public Embedder Embedder { get; }

    public static string Models => TestPaths.Data("models");

    public static string Manifest(string variant) => Path.Combine(TestPaths.RepoRoot, "spaces", variant + ".json");

    public static SpaceDefinition Load(string variant, FactorSelection? factors = null) => SpaceLoader.Load(Manifest(variant), Models, factors);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await Fusion.DisposeAsync();
        await Encoders.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class EngineCollection : ICollectionFixture<EngineFixture>
{
    public const string Name = "engine";
}
