using System.Security.Cryptography;
using System.Text.Json;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Preprocessing.Text;
using Xunit.Abstractions;

namespace FreeBind.Tests.Preprocessing;

/// <summary>
/// The C# <c>clap-text</c> and <c>internvl-text</c> ids against HF transformers' own slow tokenizers, not a twin of
/// ours: tests/fixtures/upstream/hf-text.json was written by tools/reference/upstream_hf.py, which runs upstream's
/// tokenization_utils.py (Trie split, special-token whitespace handling), tokenization_roberta.py and
/// tokenization_llama.py (legacy=True, 4.30.2's paths) on the corpus of preprocess_image_text.py plus probes
/// (special-token literals with whitespace around them, leading and repeated spaces, texts cut at 77 and 80),
/// called as laion_clap and FreeBind call them, with the generated tokenizers of make_tokenizers.py. Truncation and
/// padding there come from the generator's stand-in for tokenization_utils_base (see its docstring).
/// Ids are integers: the gate is equality, no tolerance.
/// </summary>
public sealed class HfUpstreamTests(ITestOutputHelper output)
{
    private static readonly PreprocessingOptions Options = new();

    private static readonly Lazy<JsonDocument> Fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("upstream", "hf-text.json"))));

    private static readonly Dictionary<string, string[]> TokenizerFiles = new()
    {
        ["roberta"] = ["roberta/vocab.json", "roberta/merges.txt"],
        ["internvl"] = ["internvl/tokenizer.model"],
    };

    [Fact]
    public void Roberta_ids_and_masks_equal_hf_transformers_roberta_tokenizer()
    {
        var p = (TextPreprocessor)PreprocessorRegistry.Create("clap-text", Files("roberta"), Options);
        var (compared, literals) = Compare("roberta", text =>
        {
            var tensors = p.Preprocess(text);
            return [.. tensors.Single(t => t.Name == "input_ids").Longs!, .. tensors.Single(t => t.Name == "attention_mask").Longs!];
        }, c => [.. Longs(c, "roberta_ids"), .. Longs(c, "roberta_mask")]);
        Assert.True(compared >= 100, $"only {compared} texts compared");
        Assert.True(literals >= 10, $"only {literals} special-token literal probes");
    }

    [Fact]
    public void InternVL_ids_equal_hf_transformers_llama_tokenizer()
    {
        var p = (TextPreprocessor)PreprocessorRegistry.Create("internvl-text", Files("internvl"), Options);
        var (compared, literals) = Compare("internvl", text => Assert.Single(p.Preprocess(text)).Longs!, c => Longs(c, "internvl_ids"));
        Assert.True(compared >= 100, $"only {compared} texts compared");
        Assert.True(literals >= 5, $"only {literals} special-token literal probes");
    }

    /// <summary>Texts long enough to be cut: upstream keeps the first 75 (RoBERTa) / 78 (LLaMA) pieces and ends with EOS.</summary>
    [Fact]
    public void Fixture_covers_truncation_at_77_and_80()
    {
        var cases = Fixture.Value.RootElement.GetProperty("cases").EnumerateArray().ToArray();
        Assert.Contains(cases, c => Longs(c, "roberta_mask").All(m => m == 1) && Longs(c, "roberta_ids")[76] == 2);
        Assert.Contains(cases, c => Longs(c, "internvl_ids")[79] == 2 && !Longs(c, "internvl_ids").Contains(0L));
    }

    private (int Compared, int Literals) Compare(string tokenizer, Func<string, long[]> actual, Func<JsonElement, long[]> expected)
    {
        var root = Fixture.Value.RootElement;
        foreach (var name in TokenizerFiles[tokenizer])
        {
            var path = TestPaths.Data(["tokenizers", .. name.Split('/')]);
            Assert.True(root.GetProperty("tokenizers").GetProperty(name).GetString() == Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path))),
                $"{path} is not the tokenizer the fixture was computed with: regenerate it with tools/reference/upstream_hf.py");
        }

        // Every text, the special-token literals included (HF splits them out as their ids, and so does the product).
        var mismatches = new List<string>();
        var (compared, literals) = (0, 0);
        foreach (var c in root.GetProperty("cases").EnumerateArray())
        {
            var text = c.GetProperty("text").GetString()!;
            var got = actual(text);
            var want = expected(c);
            compared++;
            if (c.GetProperty(tokenizer + "_special_literal").GetBoolean()) literals++;
            if (!got.SequenceEqual(want))
                mismatches.Add($"{JsonSerializer.Serialize(text)}: got [{string.Join(',', got.Take(24))}] want [{string.Join(',', want.Take(24))}]");
        }

        output.WriteLine($"{tokenizer}: {compared} texts compared ({literals} with a special-token literal), {mismatches.Count} mismatches");
        Assert.True(mismatches.Count == 0, string.Join('\n', mismatches));
        return (compared, literals);
    }

    private static string[] Files(string tokenizer) =>
        [.. TokenizerFiles[tokenizer].Select(f => TestPaths.Data(["tokenizers", .. f.Split('/')]))];

    private static long[] Longs(JsonElement c, string name) => [.. c.GetProperty(name).EnumerateArray().Select(v => v.GetInt64())];
}
