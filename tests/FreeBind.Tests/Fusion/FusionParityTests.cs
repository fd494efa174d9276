using System.Globalization;
using System.Text.Json;
using FreeBind.Consumers.Cli;
using FreeBind.Encoding;
using FreeBind.Encoding.Spaces;
using Xunit.Abstractions;

namespace FreeBind.Tests.Fusion;

/// <summary>
/// `freebind fuse` against the independent torch reference (tools/reference/expected_fusion.py):
/// all six variants, default factors, both presets and custom factors, 300 items and 1 item.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class FusionParityTests(EngineFixture engine, ITestOutputHelper output)
{
    // Measured on the CPU provider (the engine fixture's): at most 1.6e-7 over every setting and
    // item, float32 GEMM rounding. 1e-6 leaves 6× margin; a factor or BatchNorm-fold slip moves
    // values by 1e-3 or more.
    private const float Tolerance = 1e-6f;

    public sealed record Setting(string Variant, string Name, string File, string? Preset, Dictionary<string, Dictionary<string, double>> Factors);

    public static IEnumerable<object[]> Settings()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Data("fusion", "settings.json")));
        foreach (var s in doc.RootElement.EnumerateArray())
            yield return [s.GetProperty("variant").GetString()!, s.GetProperty("setting").GetString()!];
    }

    private static Setting Find(string variant, string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Data("fusion", "settings.json")));
        var s = doc.RootElement.EnumerateArray().Single(e => e.GetProperty("variant").GetString() == variant && e.GetProperty("setting").GetString() == name);
        var factors = s.GetProperty("factors").EnumerateObject().ToDictionary(
            b => b.Name, b => b.Value.EnumerateObject().ToDictionary(m => m.Name, m => m.Value.GetDouble()));
        return new Setting(variant, name, s.GetProperty("file").GetString()!, s.TryGetProperty("preset", out var p) ? p.GetString() : null, factors);
    }

    /// <summary>Presets by name; every other setting as explicit bond-qualified factors.</summary>
    private static FactorSelection Selection(Setting s) => s.Preset is { } preset
        ? new FactorSelection(preset, [])
        : new FactorSelection(null, s.Factors.SelectMany(b => b.Value.Select(m => new FactorOverride(b.Key, m.Key, m.Value))).ToList());

    [Theory]
    [MemberData(nameof(Settings))]
    public async Task Fuse_matches_reference_for_300_items(string variant, string setting)
    {
        var s = Find(variant, setting);
        var space = EngineFixture.Load(variant, Selection(s));
        foreach (var (bond, factors) in s.Factors)
            foreach (var (modality, f) in factors)
                Assert.Equal(f, space.Manifest.Bonds.Single(b => b.Id == bond).Factors[modality]);
        var outputPath = Path.GetTempFileName();
        try
        {
            var run = await FuseCommand.RunAsync(engine.Fusion, [(space, null)], TestPaths.Data("fusion", variant, "atoms.jsonl"), outputPath, CancellationToken.None);
            Assert.Equal(0, run.Rejected);
            Assert.Equal(run.Lines, run.Vectors);
            var expected = Jsonl.Vectors(ExpectedPath(s));
            var actual = Jsonl.Vectors(outputPath);
            Assert.Equal(expected.Count, actual.Count);
            var worst = expected.Max(kv => Jsonl.MaxAbsDiff(kv.Value, actual[kv.Key]));
            output.WriteLine($"{variant}/{setting}: {expected.Count} items, max abs diff {worst.ToString("G3", CultureInfo.InvariantCulture)}");
            Assert.True(worst <= Tolerance, $"max abs diff {worst} > {Tolerance}");
            Assert.All(File.ReadLines(outputPath), line => Assert.Contains(space.Version, line));
        }
        finally
        {
            File.Delete(outputPath);
        }
    }

    [Theory]
    [MemberData(nameof(Settings))]
    public async Task Batch_fusion_matches_reference_and_single_items(string variant, string setting)
    {
        var s = Find(variant, setting);
        var space = EngineFixture.Load(variant, Selection(s));
        var expected = Jsonl.Vectors(ExpectedPath(s));
        var items = File.ReadLines(TestPaths.Data("fusion", variant, "atoms.jsonl")).Select(AtomLine.Parse).ToList();
        var worst = 0f;
        var worstVsSingle = 0f;
        foreach (var group in items.GroupBy(a => a.Modality))
        {
            var batch = group.ToList();
            // The whole modality as one batch: on the CPU every bond step runs as concurrent row chunks.
            var vectors = engine.Fusion.FuseBatch(space, group.Key, [.. batch.Select(b => (IReadOnlyDictionary<string, float[]>)b.Atoms)]);
            Assert.Equal(batch.Count, vectors.Length);
            for (var i = 0; i < batch.Count; i++)
            {
                Assert.Equal(space.Dimension, vectors[i].Length);
                worst = MathF.Max(worst, Jsonl.MaxAbsDiff(expected[batch[i].Id], vectors[i]));
            }
            // The first items again, each alone through the per-item path (a batch of one).
            foreach (var i in new[] { 0, batch.Count / 2, batch.Count - 1 })
                worstVsSingle = MathF.Max(worstVsSingle, Jsonl.MaxAbsDiff(vectors[i], await engine.Fusion.FuseAsync(space, group.Key, batch[i].Atoms)));
        }
        output.WriteLine($"{variant}/{setting}: {items.Count} items, max abs diff {worst.ToString("G3", CultureInfo.InvariantCulture)} vs reference, {worstVsSingle.ToString("G3", CultureInfo.InvariantCulture)} vs single items");
        Assert.True(worst <= Tolerance, $"max abs diff {worst} > {Tolerance}");
        Assert.True(worstVsSingle <= Tolerance, $"batch vs single item: max abs diff {worstVsSingle} > {Tolerance}");
    }

    [Theory]
    [MemberData(nameof(Settings))]
    public async Task Fuse_matches_reference_one_item_at_a_time(string variant, string setting)
    {
        var s = Find(variant, setting);
        var space = EngineFixture.Load(variant, Selection(s));
        var expected = Jsonl.Vectors(ExpectedPath(s));
        // One item per modality, each fused alone: the micro-batcher runs batches of one.
        var firstPerModality = File.ReadLines(TestPaths.Data("fusion", variant, "atoms.jsonl"))
            .Select(AtomLine.Parse).GroupBy(a => a.Modality).Select(g => g.First());
        foreach (var (id, modality, atoms) in firstPerModality)
        {
            var vector = await engine.Fusion.FuseAsync(space, modality, atoms);
            Assert.True(Jsonl.MaxAbsDiff(expected[id], vector) <= Tolerance, $"{variant}/{setting} {id}");
        }
    }

    [Fact]
    public async Task Fuse_command_line_runs_end_to_end()
    {
        var outputPath = Path.GetTempFileName();
        try
        {
            var code = await FreeBindCli.Build().Parse([
                "fuse", "--space", EngineFixture.Manifest("imagebind++"), "--models", EngineFixture.Models, "--preset", "at-expertise",
                "--input", TestPaths.Data("fusion", "imagebind++", "atoms.jsonl"), "--output", outputPath,
            ]).InvokeAsync();
            Assert.Equal(0, code);
            var expected = Jsonl.Vectors(ExpectedPath(Find("imagebind++", "at-expertise")));
            var actual = Jsonl.Vectors(outputPath);
            Assert.Equal(expected.Count, actual.Count);
            Assert.All(expected, kv => Assert.True(Jsonl.MaxAbsDiff(kv.Value, actual[kv.Key]) <= Tolerance));
        }
        finally
        {
            File.Delete(outputPath);
        }
    }

    [Fact]
    public void Factors_change_the_space_version_but_not_the_files()
    {
        var versatile = EngineFixture.Load("imagebind++", new FactorSelection("versatile", []));
        var expertise = EngineFixture.Load("imagebind++", new FactorSelection("at-expertise", []));
        var same = EngineFixture.Load("imagebind++", FactorSelection.Parse(null, ["clap.audio=0.5", "clap.text=0.1"]));
        Assert.NotEqual(versatile.Version, expertise.Version);
        Assert.Equal(versatile.Version, same.Version);
    }

    [Fact]
    public void Unqualified_factor_targets_the_last_bond_that_blends_the_modality()
    {
        var space = EngineFixture.Load("internvl-ib++", FactorSelection.Parse(null, ["text=0.7", "image=0.4"]));
        Assert.Equal(0.7, space.Manifest.Bonds.Single(b => b.Id == "clap").Factors["text"]);
        Assert.Equal(0.2, space.Manifest.Bonds.Single(b => b.Id == "internvl").Factors["text"]);
        Assert.Equal(0.4, space.Manifest.Bonds.Single(b => b.Id == "internvl").Factors["image"]);
    }

    private static string ExpectedPath(Setting s) =>
        Path.IsPathRooted(s.File) ? s.File : File.Exists(Path.Combine(TestPaths.TestData, "fusion", s.File))
            ? Path.Combine(TestPaths.TestData, "fusion", s.File)
            : TestPaths.Data("fusion", s.Variant, s.Name + ".jsonl");
}
