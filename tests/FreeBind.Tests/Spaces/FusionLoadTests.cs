using System.Text.Json.Nodes;
using FreeBind.Encoding;
using FreeBind.Encoding.Spaces;
using FreeBind.Tests.Cli;

namespace FreeBind.Tests.Spaces;

/// <summary>
/// A backfill machine needs no encoders for a re-fusion: a stored version reloads from its
/// projector files and its stored digests, names the same version, and fuses the same vectors.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class FusionLoadTests(EngineFixture engine) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("freebind-fusion-root-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static SpaceManifest Manifest(string variant) => SpaceLoader.ReadManifest(EngineFixture.Manifest(variant));

    /// <summary>A model root holding only the projector files (links to the generated ones), and garbage where the encoders would be, if asked.</summary>
    private void ProjectorsOnly(SpaceManifest manifest, bool garbageEncoders = false)
    {
        foreach (var file in manifest.ProjectorSets.Values.SelectMany(s => s.Files))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(_root, file))!);
            File.CreateSymbolicLink(Path.Combine(_root, file), Path.Combine(EngineFixture.Models, file));
        }
        if (!garbageEncoders) return;
        foreach (var file in SpaceLoader.ReferencedFiles(manifest).Where(f => !File.Exists(Path.Combine(_root, f))))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(_root, file))!);
            File.WriteAllText(Path.Combine(_root, file), "not a model: a fusion-only load must never read this");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_stored_version_reloads_from_its_projectors_alone_with_the_same_version_digests_and_vectors(bool garbageEncoders)
    {
        var full = EngineFixture.Load("internvl-ib-ft++", FactorSelection.Parse(null, ["clap.audio=0.7", "text=0.3"]));
        ProjectorsOnly(full.Manifest, garbageEncoders);
        var cache = new FileDigestCache();

        var stored = SpaceLoader.LoadStored(full.ToJson().ToJsonString(), _root, cache);

        Assert.Equal(full.Version, stored.Version);
        Assert.Equal(SpaceUse.Fuse, stored.Use);
        var projectorBytes = full.Manifest.ProjectorSets.Values.SelectMany(s => s.Files).Distinct().Sum(f => new FileInfo(Path.Combine(EngineFixture.Models, f)).Length);
        Assert.Equal(projectorBytes, cache.BytesHashed); // not one encoder or tokenizer byte
        foreach (var plan in full.Plans.Values)
            foreach (var expert in plan.Experts)
                Assert.Equal(full.ModelDigest(expert, plan.Modality), stored.ModelDigest(expert, plan.Modality));

        foreach (var line in File.ReadLines(TestPaths.Data("fusion", "internvl-ib-ft++", "atoms.jsonl")).Where((_, i) => i % 100 == 0))
        {
            var (_, modality, atoms) = FreeBind.Consumers.Cli.AtomLine.Parse(line);
            Assert.Equal(await engine.Fusion.FuseAsync(full, modality, atoms), await engine.Fusion.FuseAsync(stored, modality, atoms));
        }
        var refused = Assert.Throws<InvalidOperationException>(() => engine.Encoders.Model(stored, "imagebind", Modality.Image));
        Assert.Contains("was loaded for fusion only", refused.Message);
    }

    [Fact]
    public void A_projector_that_differs_from_the_stored_version_is_refused_by_name()
    {
        var full = EngineFixture.Load("imagebind++");
        ProjectorsOnly(full.Manifest);
        var changed = Path.Combine(_root, "IB_PP_M_Proj/AT/best.onnx");
        var bytes = File.ReadAllBytes(changed);
        bytes[bytes.Length / 2] ^= 0x01; // one weight bit: the file still parses
        File.Delete(changed);
        File.WriteAllBytes(changed, bytes);

        var error = Assert.Throws<SpaceValidationException>(() => SpaceLoader.LoadStored(full.ToJson().ToJsonString(), _root));
        var message = Assert.Single(error.Errors);
        Assert.StartsWith("file 'IB_PP_M_Proj/AT/best.onnx' is not the one the version was built with (SHA-256 ", message);
    }

    [Fact]
    public void An_edited_stored_document_is_refused()
    {
        var full = EngineFixture.Load("imagebind++");
        ProjectorsOnly(full.Manifest);
        var document = full.ToJson();
        document["manifest"]!["bonds"]![0]!["factors"]!["audio"] = 0.9;
        var error = Assert.Throws<SpaceValidationException>(() => SpaceLoader.LoadStored(document.ToJsonString(), _root));
        Assert.Contains($"the stored document names version {full.Version} but its manifest and digests give sha256:", Assert.Single(error.Errors));

        var noDigests = full.ToJson();
        noDigests["files"]!.AsObject().Remove("encoders/imagebind/text.onnx");
        error = Assert.Throws<SpaceValidationException>(() => SpaceLoader.LoadStored(noDigests.ToJsonString(), _root));
        Assert.StartsWith("1 encoder and tokenizer file is not under the model root and no digest was given for it (the first is 'encoders/imagebind/text.onnx')", Assert.Single(error.Errors));
    }

    [Fact]
    public void Fusion_takes_encoder_digests_from_the_files_when_they_are_there()
    {
        var full = EngineFixture.Load("internvl-ib", new FactorSelection(null, []));
        var fused = SpaceLoader.Build(Manifest("internvl-ib"), EngineFixture.Models, new SpaceLoadOptions { Use = SpaceUse.Fuse });
        Assert.Equal(full.Version, fused.Version);
        Assert.Equal(full.Files.Digests, fused.Files.Digests);
    }

    [Fact]
    public async Task Fuse_on_a_machine_with_only_the_projectors_writes_the_full_versions_vectors()
    {
        var manifest = Manifest("imagebind++");
        ProjectorsOnly(manifest);
        var version = Path.Combine(_root, "version.json");
        var shown = await CliRun.RunAsync("spaces", "show", "--space", EngineFixture.Manifest("imagebind++"), "--models", EngineFixture.Models,
            "--preset", "at-expertise", "--json");
        Assert.Equal(0, shown.Code);
        File.WriteAllText(version, shown.Out);
        Assert.Equal(EngineFixture.Load("imagebind++", new FactorSelection("at-expertise", [])).Version, (string?)JsonNode.Parse(shown.Out)!["version"]);

        var input = TestPaths.Data("fusion", "imagebind++", "atoms.jsonl");
        var here = Path.Combine(_root, "here.jsonl");
        var there = Path.Combine(_root, "there.jsonl");
        Assert.Equal(0, (await CliRun.RunAsync("fuse", "--space", EngineFixture.Manifest("imagebind++"), "--models", EngineFixture.Models,
            "--preset", "at-expertise", "--input", input, "--output", here)).Code);
        var (code, _, error) = await CliRun.RunAsync("fuse", "--space", EngineFixture.Manifest("imagebind++"), "--models", _root,
            "--preset", "at-expertise", "--digests", version, "--input", input, "--output", there);
        Assert.True(code == 0, error);
        Assert.Equal(File.ReadAllBytes(here), File.ReadAllBytes(there));

        // Without the digests, one sentence says what is missing and where to get it.
        (code, _, error) = await CliRun.RunAsync("fuse", "--space", EngineFixture.Manifest("imagebind++"), "--models", _root,
            "--preset", "at-expertise", "--input", input, "--output", there);
        Assert.Equal(1, code);
        var lines = CliRun.Lines(error);
        Assert.Equal("error: space 'imagebind++' does not validate:", lines[0]);
        Assert.StartsWith("  - 10 encoder and tokenizer files are not under the model root and no digest was given for them", lines[1]);
        Assert.EndsWith("give `freebind fuse --digests FILE` what `freebind spaces show --json` prints where the encoders are", lines[1]);
        Assert.Equal(2, lines.Count);
    }
}
