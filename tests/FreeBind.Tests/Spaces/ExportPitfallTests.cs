using FreeBind.Encoding;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using FreeBind.Tests.Cli;
using Microsoft.Extensions.Logging.Abstractions;

namespace FreeBind.Tests.Spaces;

/// <summary>
/// The pitfall files, written by onnx itself from the stand-in encoders (tools/reference/make_edge_models.py)
/// into a folder of this test run: a few hundred kB, about a second.
/// </summary>
public sealed class EdgeModels : IAsyncLifetime
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("freebind-edge-").FullName;

    public string File(params string[] parts) => Path.Combine([Folder, .. parts]);

    public async Task InitializeAsync()
    {
        var script = Path.Combine(TestPaths.RepoRoot, "tools", "reference", "make_edge_models.py");
        var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3", [script, "--models", EngineFixture.Models, "--out", Folder])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = System.Diagnostics.Process.Start(psi) ?? throw new InvalidOperationException("cannot start /usr/bin/python3");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"make_edge_models.py exited {process.ExitCode} (scripts/install-deps.sh installs python3-onnx): {stderr}{await stdout}");
    }

    public Task DisposeAsync()
    {
        Directory.Delete(Folder, recursive: true);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Two export pitfalls of real models (issue 10): weights in an external <c>.onnx.data</c> file
/// (models over 2 GB) are part of the version and must be there whole; an encoder whose file
/// leaves its output width symbolic gets the width checked by running it. The files are written
/// by onnx itself (tools/reference/make_edge_models.py).
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class ExportPitfallTests(EngineFixture engine, EdgeModels edge) : IClassFixture<EdgeModels>, IDisposable
{
    private const string Vision = "encoders/imagebind/vision.onnx";
    private readonly string _root = Directory.CreateTempSubdirectory("freebind-export-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static SpaceManifest Manifest() => SpaceLoader.ReadManifest(EngineFixture.Manifest("imagebind"));

    /// <summary>The imagebind space's files under a fresh root (links), its vision encoder replaced by <paramref name="vision"/> (copied, with its data file).</summary>
    private string Root(params string[] vision)
    {
        foreach (var file in SpaceLoader.ReferencedFiles(Manifest()))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(_root, file))!);
            if (file != Vision) File.CreateSymbolicLink(Path.Combine(_root, file), Path.Combine(EngineFixture.Models, file));
        }
        foreach (var source in vision)
            File.Copy(source, Path.Combine(_root, "encoders/imagebind", Path.GetFileName(source).Replace("narrow", "vision", StringComparison.Ordinal)));
        return _root;
    }

    private string External(string name) => edge.File("external", name);

    [Fact]
    public async Task External_weights_are_loaded_and_covered_by_the_version_and_the_atom_digest()
    {
        var root = Root(External("vision.onnx"), External("vision.onnx.data"));
        var space = SpaceLoader.Build(Manifest(), root);
        Assert.Equal(["encoders/imagebind/vision.onnx.data"], space.Files.ExternalData[Vision]);
        Assert.True(space.Files.Digests.ContainsKey("encoders/imagebind/vision.onnx.data"));

        // Same weights as the inline stand-in: the same atoms.
        var inline = EngineFixture.Load("imagebind");
        var image = new MediaInput(Modality.Image, File.ReadAllBytes(TestPaths.Sample("BBQ.jpeg")), FileName: "BBQ.jpeg");
        var expected = await engine.Embedder.EmbedAsync(inline, image);
        var actual = await engine.Embedder.EmbedAsync(space, image);
        Assert.Equal(expected.Atoms["imagebind"], actual.Atoms["imagebind"]);

        // A weight changed in the data file alone (same size, the .onnx untouched) is a new version and a new atom digest.
        var data = Path.Combine(root, "encoders/imagebind/vision.onnx.data");
        var bytes = File.ReadAllBytes(data);
        bytes[^8] ^= 0x01;
        File.WriteAllBytes(data, bytes);
        var changed = SpaceLoader.Build(Manifest(), root);
        Assert.NotEqual(space.Version, changed.Version);
        Assert.NotEqual(space.ModelDigest("imagebind", Modality.Image), changed.ModelDigest("imagebind", Modality.Image));
        Assert.Equal(space.ModelDigest("imagebind", Modality.Text), changed.ModelDigest("imagebind", Modality.Text));

        // A machine without encoders reloads it from the stored digests, data file included.
        var projectorsOnly = Directory.CreateDirectory(Path.Combine(_root, "fusion-only")).FullName;
        Assert.Equal(changed.Version, SpaceLoader.LoadStored(changed.ToJson().ToJsonString(), projectorsOnly).Version);
    }

    [Fact]
    public void A_missing_weights_file_is_one_clear_error()
    {
        var root = Root(External("vision.onnx"));
        var error = Assert.Throws<SpaceValidationException>(() => SpaceLoader.Build(Manifest(), root));
        Assert.Equal(
            $"expert 'imagebind' image model '{Vision}': its weights file 'vision.onnx.data' is missing (looked for {Path.Combine(root, "encoders/imagebind/vision.onnx.data")}); " +
            "a model over 2 GB is exported as .onnx + .onnx.data, copy both",
            Assert.Single(error.Errors));
    }

    [Fact]
    public void A_truncated_weights_file_is_one_clear_error()
    {
        var root = Root(External("vision.onnx"), External("vision.onnx.data"));
        var data = Path.Combine(root, "encoders/imagebind/vision.onnx.data");
        var full = new FileInfo(data).Length;
        using (var stream = new FileStream(data, FileMode.Open)) stream.SetLength(1000); // an interrupted copy
        var error = Assert.Throws<SpaceValidationException>(() => SpaceLoader.Build(Manifest(), root));
        Assert.Equal(
            $"expert 'imagebind' image model '{Vision}': its weights file 'vision.onnx.data' is truncated: 1,000 bytes, its tensors need {full:N0}; copy it again or re-export",
            Assert.Single(error.Errors));
    }

    [Fact]
    public async Task Validate_measures_a_symbolic_output_width_by_running_the_encoder()
    {
        var root = Root(edge.File("symbolic", "vision.onnx"));
        var ok = await CliRun.RunAsync("spaces", "validate", "--space", EngineFixture.Manifest("imagebind"), "--models", root);
        Assert.True(ok.Code == 0, ok.Out + ok.Error);
        Assert.StartsWith("ok    imagebind  sha256:", ok.Out);
    }

    [Fact]
    public async Task A_symbolic_width_that_disagrees_with_the_manifest_is_found_by_validate_and_at_load()
    {
        // InternVL-C's 768-d vision encoder where the manifest says 1024, its width left open in the file.
        var root = Root(edge.File("symbolic", "narrow.onnx"));
        var (code, stdout, _) = await CliRun.RunAsync("spaces", "validate", "--space", EngineFixture.Manifest("imagebind"), "--models", root);
        Assert.Equal(1, code);
        Assert.Contains($"      - expert 'imagebind' image model '{Vision}': output width 768 (measured by running the model once; the file leaves it symbolic) disagrees with the manifest's dimension 1024", stdout);

        // A load without the probe (the worker's) catches it when the session opens, before any item.
        var space = SpaceLoader.Build(Manifest(), root);
        await using var encoders = new FreeBind.Encoding.Experts.ExpertEncoders(new SessionFactory(new OnnxOptions { ExecutionProvider = "cpu" }, NullLogger<SessionFactory>.Instance));
        var error = Assert.Throws<InvalidDataException>(() => encoders.Prepare(space));
        Assert.Equal($"expert 'imagebind' image encoder ({Vision}): outputs 768 values per row, but the manifest says expert 'imagebind' is 1024-d", error.Message);
    }
}
