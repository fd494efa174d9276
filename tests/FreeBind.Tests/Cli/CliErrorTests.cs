using System.Text.Json;
using System.Text.Json.Nodes;
using FreeBind.Tests.Fusion;

namespace FreeBind.Tests.Cli;

/// <summary>
/// The command line tried as a new user would (issue 7, item 10): every mistake gets one message
/// that names what to fix, in the user's terms, with the documented exit code.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class CliErrorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("freebind-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static string Models => EngineFixture.Models;

    private static string Space(string variant) => EngineFixture.Manifest(variant);

    /// <summary>The first <paramref name="count"/> atom lines of the reference data of <paramref name="variant"/>, as JSON objects.</summary>
    private static List<JsonObject> AtomLines(string variant, int count) =>
        [.. File.ReadLines(TestPaths.Data("fusion", variant, "atoms.jsonl")).Take(count).Select(l => JsonNode.Parse(l)!.AsObject())];

    private string Write(string name, IEnumerable<string> lines)
    {
        var path = PathOf(name);
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public async Task Fuse_names_the_item_expert_and_position_of_every_bad_atom_and_counts_the_rejected_lines()
    {
        var good = AtomLines("imagebind", 2);
        string With(int line, Action<JsonArray> change)
        {
            var copy = good[line].DeepClone().AsObject();
            change(copy["experts"]!["imagebind"]!.AsArray());
            return copy.ToJsonString();
        }
        var id0 = (string)good[0]["id"]!;
        var id1 = (string)good[1]["id"]!;
        var lines = new[]
        {
            good[0].ToJsonString(),
            // A non-JSON writer's NaN at the very first position (the parser would say "'N' is an invalid start of a value").
            With(1, a => a[0] = 123456.0).Replace("\"imagebind\":[123456,", "\"imagebind\":[NaN,", StringComparison.Ordinal),
            With(1, a => a[3] = 1e39),                     // a valid JSON number, but no float32
            With(1, a => a[5] = "0.25"),                   // a string
            With(0, a => a.RemoveAt(a.Count - 1)),         // one value short
            good[1].ToJsonString().Replace("\"experts\"", "\"id2\":1,\"experts\"", StringComparison.Ordinal)[..200], // cut off
            "",                                             // blank lines are not items
            good[1].ToJsonString(),
        };
        var output = PathOf("out.jsonl");
        var (code, _, error) = await CliRun.RunAsync("fuse", "--space", Space("imagebind"), "--models", Models, "--input", Write("in.jsonl", lines), "--output", output);

        Assert.Equal(2, code);
        var messages = CliRun.Lines(error).Where(l => l.StartsWith("rejected", StringComparison.Ordinal)).ToList();
        Assert.Equal([
            $"rejected line 2: item '{id1}': experts.imagebind[0] is NaN, not a finite number: JSON has no NaN or Infinity, and an atom must be finite (the encoder that produced it failed)",
            $"rejected line 3: item '{id1}': experts.imagebind[3] = 1E+39 is beyond the float32 range of an atom (±3.4e38)",
            $"rejected line 4: item '{id1}': experts.imagebind[5] is a string, not a number",
            $"rejected line 5: item '{id0}': atom 'imagebind' has 1023 values, the expert is 1024-d",
        ], messages[..4]);
        Assert.StartsWith($"rejected line 6: item '{id1}': experts.imagebind[", messages[4]);
        Assert.Contains("is cut off: the line ends before the JSON does", messages[4]);
        Assert.Equal(5, messages.Count);
        Assert.Contains("5 of 7 lines rejected; 2 fused: 2 vectors → " + output + " (exit code 2)", error);
        Assert.DoesNotContain("model", string.Join("\n", messages), StringComparison.OrdinalIgnoreCase); // nothing here is a model's fault
        Assert.Equal([id0, id1], Jsonl.Vectors(output).Keys);
    }

    [Fact]
    public async Task A_line_that_is_not_unicode_or_not_an_item_is_rejected_with_its_reason()
    {
        var lines = new[]
        {
            """{"id":"x\ud800","modality":"text","experts":{}}""",
            """{"id":"y","modality":"video","experts":{}}""",
            """{"id":"z","modality":"text"}""",
            """[1,2]""",
            """{"id":"w","modality":"text","experts":{"imagebind":[1]}} {}""",
        };
        var (code, _, error) = await CliRun.RunAsync("fuse", "--space", Space("imagebind"), "--models", Models, "--input", Write("in.jsonl", lines), "--output", PathOf("out.jsonl"));
        Assert.Equal(2, code);
        var messages = CliRun.Lines(error).Where(l => l.StartsWith("rejected", StringComparison.Ordinal)).ToList();
        Assert.StartsWith("rejected line 1: id is not valid Unicode text", messages[0]);
        Assert.Equal("rejected line 2: item 'y': modality 'video' is not image, audio or text", messages[1]);
        Assert.Equal("rejected line 3: item 'z': missing object field 'experts'", messages[2]);
        Assert.Equal("rejected line 4: a line must be a JSON object", messages[3]);
        Assert.Equal("rejected line 5: item 'w': more than one JSON value on the line", messages[4]);
        Assert.Contains("5 of 5 lines rejected", error);
    }

    [Theory]
    [InlineData("--preset", "nope", "error: space 'imagebind++' has no preset 'nope' (presets: at-expertise, versatile)")]
    [InlineData("--factor", "audio=1.5", "error: factor 'audio=1.5' is outside [0, 1]")]
    [InlineData("--factor", "vlc.image=0.2", "error: factor 'vlc.image=0.2': space 'imagebind++' has no bond 'vlc' (bonds: clap)")]
    [InlineData("--factor", "audio", "error: factor 'audio' is not of the form [bond.]modality=number, e.g. audio=0.8 or clap.text=0.5")]
    public async Task A_bad_preset_or_factor_is_blamed_on_the_command_line_not_the_manifest(string option, string value, string expected)
    {
        var output = PathOf("out.jsonl");
        var (code, _, error) = await CliRun.RunAsync("fuse", "--space", Space("imagebind++"), "--models", Models, option, value,
            "--input", TestPaths.Data("fusion", "imagebind++", "atoms.jsonl"), "--output", output);
        Assert.Equal(1, code);
        Assert.Equal([expected], CliRun.Lines(error));
        Assert.False(File.Exists(output), "nothing is written when the command line is wrong");
    }

    [Fact]
    public async Task An_unknown_space_is_named_with_the_spaces_there_are()
    {
        var (code, _, error) = await CliRun.RunAsync("spaces", "show", "--space", "imagebindpp", "--models", Models);
        Assert.Equal(1, code);
        var line = Assert.Single(CliRun.Lines(error));
        Assert.StartsWith("error: no space named 'imagebindpp' in ", line);
        Assert.EndsWith("(spaces: imagebind, imagebind++, internvl-ib, internvl-ib++, internvl-ib-ft, internvl-ib-ft++)", line);
        Assert.Equal(["error: no manifest file '" + PathOf("nope.json") + "'"],
            CliRun.Lines((await CliRun.RunAsync("spaces", "show", "--space", PathOf("nope.json"))).Error));
    }

    [Theory]
    [InlineData("spaces", "validate")]
    [InlineData("embed", "--text", "a dog")]
    [InlineData("fuse", "--input", "ATOMS", "--output", "OUT")]
    public async Task A_wrong_model_folder_is_one_sentence(params string[] command)
    {
        var args = command.Select(a => a == "ATOMS" ? TestPaths.Data("fusion", "imagebind++", "atoms.jsonl") : a == "OUT" ? PathOf("out.jsonl") : a).ToList();
        var empty = Directory.CreateDirectory(PathOf("not-the-models")).FullName;
        var (code, _, error) = await CliRun.RunAsync([.. args, "--space", Space("imagebind++"), "--models", empty]);
        Assert.Equal(1, code);
        var line = Assert.Single(CliRun.Lines(error));
        Assert.StartsWith($"error: model folder '{empty}' holds none of the ", line);
        Assert.Contains("files space 'imagebind++' needs (the first is '", line);
        Assert.EndsWith("give the folder of your ONNX exports (setting Spaces:ModelRoot, or --models; docs/export.md)", line);

        var missing = PathOf("no-such-folder");
        (code, _, error) = await CliRun.RunAsync([.. args, "--space", Space("imagebind++"), "--models", missing]);
        Assert.Equal(1, code);
        Assert.Equal([$"error: model folder '{missing}' does not exist: give the folder of your ONNX exports (setting Spaces:ModelRoot, or --models; docs/export.md)"], CliRun.Lines(error));
    }

    [Fact]
    public async Task Fuse_takes_preset_repeatedly_and_writes_each_presets_vectors()
    {
        var input = TestPaths.Data("fusion", "imagebind++", "atoms.jsonl");
        var both = PathOf("both.jsonl");
        Assert.Equal(0, (await CliRun.RunAsync("fuse", "--space", Space("imagebind++"), "--models", Models,
            "--preset", "versatile", "--preset", "at-expertise", "--input", input, "--output", both)).Code);
        foreach (var preset in new[] { "versatile", "at-expertise" })
        {
            var alone = PathOf(preset + ".jsonl");
            Assert.Equal(0, (await CliRun.RunAsync("fuse", "--space", Space("imagebind++"), "--models", Models, "--preset", preset, "--input", input, "--output", alone)).Code);
            var expected = File.ReadAllLines(alone);
            var mine = File.ReadLines(both).Where(l => l.Contains($"\"preset\":\"{preset}\"", StringComparison.Ordinal)).ToList();
            Assert.Equal(900, mine.Count);
            Assert.Equal(expected, mine); // same bytes: same version, same vectors, same order
        }
        Assert.Equal(1800, File.ReadLines(both).Count());
    }

    [Fact]
    public async Task Embed_output_with_two_presets_writes_every_presets_vectors_each_named_by_its_version()
    {
        var output = PathOf("embed.jsonl");
        var (code, stdout, error) = await CliRun.RunAsync("embed", "--space", Space("imagebind++"), "--models", Models,
            "--preset", "versatile", "--preset", "at-expertise",
            "--audio", TestPaths.Sample("BBQ.wav"), "--text", "C++ & <tags> — 'quoted' \"too\"", "--output", output);
        Assert.Equal(0, code);
        var versions = new Dictionary<string, string>();
        foreach (var preset in new[] { "versatile", "at-expertise" })
        {
            var shown = await CliRun.RunAsync("spaces", "validate", "--space", Space("imagebind++"), "--models", Models, "--preset", preset);
            versions[preset] = shown.Out.Split("  ", StringSplitOptions.RemoveEmptyEntries)[^1].Trim();
            Assert.Contains($"  {versions[preset]}  preset {preset}", error); // each factor choice is named with its version
            Assert.Contains($"---- imagebind++ {versions[preset]["sha256:".Length..][..12]} preset {preset}", stdout);
        }
        var lines = File.ReadAllLines(output);
        Assert.Equal(4, lines.Length); // 2 items × 2 presets
        foreach (var preset in versions.Keys)
        {
            var mine = lines.Where(l => l.Contains($"\"preset\":\"{preset}\"", StringComparison.Ordinal)).ToList();
            Assert.Equal(2, mine.Count);
            Assert.All(mine, l => Assert.Contains($"\"space_version\":\"{versions[preset]}\"", l));
            // Each preset's vectors are that preset's: re-fusing the written atoms with it gives them back.
            var refused = PathOf(preset + ".fused.jsonl");
            Assert.Equal(0, (await CliRun.RunAsync("fuse", "--space", Space("imagebind++"), "--models", Models, "--preset", preset,
                "--input", Write(preset + ".jsonl", mine), "--output", refused)).Code);
            var embedded = Jsonl.Vectors(PathOf(preset + ".jsonl"));
            Assert.All(Jsonl.Vectors(refused), kv => Assert.True(Jsonl.MaxAbsDiff(kv.Value, embedded[kv.Key]) <= 1e-6f));
        }
        Assert.NotEqual(Jsonl.Vectors(PathOf("versatile.jsonl"))["BBQ.wav"], Jsonl.Vectors(PathOf("at-expertise.jsonl"))["BBQ.wav"]);
    }

    [Fact]
    public async Task Output_json_writes_text_as_it_is()
    {
        var output = PathOf("embed.jsonl");
        const string text = "C++ & <tags> — 'quoted' \"too\"";
        Assert.Equal(0, (await CliRun.RunAsync("embed", "--space", Space("imagebind"), "--models", Models, "--text", text, "--output", output)).Code);
        var line = File.ReadAllText(output);
        Assert.Contains("\"id\":\"text-0 \\\"C++ & <tags> — 'quot…\\\"\"", line); // only what JSON requires is escaped
        Assert.DoesNotContain("\\u00", line);
        Assert.DoesNotContain("\\u20", line);
    }

    [Fact]
    public async Task Embed_names_the_version_of_the_manifest_factors_as_the_demo_and_worker_do()
    {
        // The worker (and `freebind demo`) embed into the manifest's factors unless a preset is set;
        // embed says which factor choice each version it prints belongs to.
        var (code, _, error) = await CliRun.RunAsync("embed", "--space", Space("imagebind++"), "--models", Models, "--text", "a dog");
        Assert.Equal(0, code);
        var validated = (await CliRun.RunAsync("spaces", "validate", "--space", Space("imagebind++"), "--models", Models)).Out;
        var version = validated.Split("  ", StringSplitOptions.RemoveEmptyEntries)[^1].Trim();
        Assert.Contains($"  {version}  manifest factors", error);
    }

    [Fact]
    public async Task Preprocess_finds_the_clip_vocabulary_of_imagebind_text_without_tokenizer()
    {
        var found = PathOf("found.npy");
        var given = PathOf("given.npy");
        var (code, _, error) = await CliRun.RunAsync("preprocess", "--profile", "imagebind-text", "--models", Models, "--output", found, "an audio of train");
        Assert.Equal(0, code);
        Assert.Contains("tokenizer: " + Path.Combine(Models, "tokenizers/clip/bpe_simple_vocab_16e6.txt.gz"), error);
        Assert.Equal(0, (await CliRun.RunAsync("preprocess", "--profile", "imagebind-text", "--tokenizer", TestPaths.ClipVocab, "--output", given, "an audio of train")).Code);
        Assert.Equal(File.ReadAllBytes(given), File.ReadAllBytes(found));

        var empty = Directory.CreateDirectory(PathOf("empty")).FullName;
        (code, _, error) = await CliRun.RunAsync("preprocess", "--profile", "imagebind-text", "--models", empty, "--output", found, "an audio of train");
        Assert.Equal(1, code);
        Assert.Equal([$"error: profile 'imagebind-text' reads tokenizers/clip/bpe_simple_vocab_16e6.txt.gz, which is not under the model root '{empty}': give --models DIR (the folder of your exports) or --tokenizer FILE"],
            CliRun.Lines(error));
    }

    [Fact]
    public async Task Exit_codes_are_documented_where_users_look()
    {
        var (_, help, _) = await CliRun.RunAsync("fuse", "--help");
        Assert.Contains("Exit codes: 0 every line fused; 1 a wrong option, space, model folder or input file (no output); 2 some lines rejected", help);
        var readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        Assert.Contains("| 2 | some input lines were rejected", readme);
    }
}
