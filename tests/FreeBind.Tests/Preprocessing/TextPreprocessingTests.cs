using System.Text.Json;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Preprocessing.Text;
using Xunit.Abstractions;

namespace FreeBind.Tests.Preprocessing;

public sealed class TextPreprocessingTests(ITestOutputHelper output)
{
    private static readonly PreprocessingOptions Options = new();

    private static string[] Corpus() =>
        JsonSerializer.Deserialize<string[]>(File.ReadAllText(TestPaths.Data("preprocess", "text", "corpus.json")))!;

    private static string[] ClipFiles => [TestPaths.ClipVocab];

    private static string[] RobertaFiles =>
        [TestPaths.Data("tokenizers", "roberta", "vocab.json"), TestPaths.Data("tokenizers", "roberta", "merges.txt")];

    private static string[] InternVLFiles => [TestPaths.Data("tokenizers", "internvl", "tokenizer.model")];

    /// <summary>
    /// The CLIP path against upstream's own code: ids from ImageBind's SimpleTokenizer with ftfy 6.1.3,
    /// computed outside the repository and committed as tests/fixtures/upstream/clip-text.json (the
    /// reference corpus plus strings chosen to probe ftfy: mojibake, entities, C1 controls, line breaks,
    /// ligatures, tag characters). Exact for every text except the <see cref="FtfyHeuristics"/> ones.
    /// </summary>
    [Fact]
    public void Clip_ids_match_upstream_imagebind_with_ftfy()
    {
        var cases = UpstreamClipCases();
        Assert.True(cases.Count >= 120, $"only {cases.Count} cases");
        var p = (TextPreprocessor)PreprocessorRegistry.Create("imagebind-text", ClipFiles, Options);
        var compared = cases.Where(c => !FtfyHeuristics.Contains(c.Text)).ToArray();
        AssertAllEqual([.. compared.Select(c => c.Text)], [.. compared.Select(c => c.Ids)], t => Assert.Single(p.Preprocess(t)).Longs!, "clip vs upstream");
    }

    [Fact]
    public void Text_fixer_matches_ftfy()
    {
        var mismatches = UpstreamClipCases()
            .Where(c => !FtfyHeuristics.Contains(c.Text) && TextFixer.Fix(c.Text) != c.Ftfy)
            .Select(c => $"{JsonSerializer.Serialize(c.Text)}: got {JsonSerializer.Serialize(TextFixer.Fix(c.Text))} want {JsonSerializer.Serialize(c.Ftfy)}")
            .ToList();
        Assert.True(mismatches.Count == 0, string.Join('\n', mismatches));
    }

    /// <summary>
    /// Texts where ftfy's statistical mojibake detection (not reproduced, see TextFixer) decides:
    /// each must still differ from upstream, so this list shrinks when the fixer learns one.
    /// </summary>
    private static readonly HashSet<string> FtfyHeuristics =
    [
        "\u00C3 alone", "voil\u00C3 ", "\u00C3\u00A9t\u00C3\u00A9 \u00C3  la plage", // a byte A0 that became a space
        "\u4E2D\u6587 caf\u00C3\u00A9 mixed", "\u00C3\u00A1rbol \u00E1rbol", // mojibake inside otherwise clean text
    ];

    [Fact]
    public void Known_ftfy_differences_are_still_different()
    {
        foreach (var c in UpstreamClipCases().Where(c => FtfyHeuristics.Contains(c.Text)))
            Assert.NotEqual(c.Ftfy, TextFixer.Fix(c.Text));
    }

    private sealed record UpstreamClipCase(string Text, string Ftfy, long[] Ids);

    private static List<UpstreamClipCase> UpstreamClipCases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("upstream", "clip-text.json")));
        return [.. doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => new UpstreamClipCase(
            c.TryGetProperty("utf16", out var units) ? new string([.. units.EnumerateArray().Select(u => (char)u.GetInt32())]) : c.GetProperty("text").GetString()!,
            c.GetProperty("ftfy").GetString()!, c.GetProperty("ids").Deserialize<long[]>()!))];
    }

    [Fact]
    public void Clip_captions_start_with_sot_and_end_with_eot()
    {
        var p = (TextPreprocessor)PreprocessorRegistry.Create("imagebind-text", ClipFiles, Options);
        var t = Assert.Single(p.Preprocess("an audio of barbeque"));
        Assert.Equal("input_ids", t.Name);
        Assert.Equal([1, 77], t.Shape);
        Assert.Equal(ClipTokenizer.StartOfText, t.Longs![0]);
        var eot = Array.IndexOf(t.Longs, ClipTokenizer.EndOfText);
        Assert.True(eot > 1);
        Assert.All(t.Longs[(eot + 1)..], id => Assert.Equal(0, id));
    }

    [Fact]
    public void Clip_truncation_keeps_eot_last()
    {
        var p = (TextPreprocessor)PreprocessorRegistry.Create("imagebind-text", ClipFiles, Options);
        var ids = Assert.Single(p.Preprocess(string.Join(' ', Enumerable.Repeat("word", 200)))).Longs!;
        Assert.Equal(ClipTokenizer.EndOfText, ids[76]);
        Assert.DoesNotContain(0L, ids);
    }

    [Fact]
    public void Roberta_ids_and_mask_match_the_reference()
    {
        var corpus = Corpus();
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Data("preprocess", "text", "roberta.json")));
        var ids = doc.RootElement.GetProperty("input_ids").Deserialize<long[][]>()!;
        var masks = doc.RootElement.GetProperty("attention_mask").Deserialize<long[][]>()!;
        var p = (TextPreprocessor)PreprocessorRegistry.Create("clap-text", RobertaFiles, Options);
        AssertAllEqual(corpus, ids, t => p.Preprocess(t).Single(x => x.Name == "input_ids").Longs!, "roberta ids");
        AssertAllEqual(corpus, masks, t => p.Preprocess(t).Single(x => x.Name == "attention_mask").Longs!, "roberta mask");
    }

    [Fact]
    public void InternVL_ids_match_sentencepiece()
    {
        var corpus = Corpus();
        var expected = JsonSerializer.Deserialize<long[][]>(File.ReadAllText(TestPaths.Data("preprocess", "text", "internvl.json")))!;
        var p = (TextPreprocessor)PreprocessorRegistry.Create("internvl-text", InternVLFiles, Options);
        AssertAllEqual(corpus, expected, t => Assert.Single(p.Preprocess(t)).Longs!, "internvl");
        Assert.Equal([1, 80], p.Preprocess("x")[0].Shape);
    }

    /// <summary>
    /// HF's RobertaTokenizer reads merges.txt as <c>read().split("\n")[1:-1]</c>: the first line is
    /// taken for the "#version" header whatever it holds. A file without the header therefore loses
    /// its first merge, in HF and here alike.
    /// </summary>
    [Fact]
    public void Roberta_merges_skip_the_first_line_as_hf_does()
    {
        var vocab = TestPaths.Data("tokenizers", "roberta", "vocab.json");
        var merges = TestPaths.Data("tokenizers", "roberta", "merges.txt");
        var lines = File.ReadAllLines(merges);
        Assert.StartsWith("#version", lines[0]);
        var first = lines[1].Split(' ');
        var headerless = Path.Combine(Path.GetTempPath(), $"merges-{Guid.NewGuid():N}.txt");
        try
        {
            File.WriteAllText(headerless, string.Join('\n', lines[1..]) + "\n");
            var text = "x" + Decode(first[0] + first[1]);
            var withHeader = RobertaTokenizer.Load(vocab, merges).Encode(text);
            var withoutHeader = RobertaTokenizer.Load(vocab, headerless).Encode(text);
            Assert.NotEqual(withHeader, withoutHeader);
            Assert.True(withoutHeader.Count > withHeader.Count, "the first merge must not be applied");
        }
        finally
        {
            File.Delete(headerless);
        }

        // The byte-level symbols of a merge back to text (Ġ is a space, as GPT-2 maps bytes).
        static string Decode(string symbols) => symbols.Replace('\u0120', ' ');
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("\t\n\u3000")]
    public void Blank_text_is_refused(string text)
    {
        var p = PreprocessorRegistry.Create("imagebind-text", ClipFiles, Options);
        var e = Assert.Throws<MediaException>(() => p.Process(MediaInput.FromText(text)));
        Assert.Equal(MediaErrorKind.EmptyText, e.Kind);
    }

    [Fact]
    public void Text_above_the_cap_is_refused()
    {
        var p = PreprocessorRegistry.Create("imagebind-text", ClipFiles, new PreprocessingOptions { MaxTextLength = 10 });
        var e = Assert.Throws<MediaException>(() => p.Process(MediaInput.FromText("eleven char")));
        Assert.Equal(MediaErrorKind.TooLarge, e.Kind);
    }

    [Theory]
    [InlineData("cafÃ©", "café")] // UTF-8 read as latin-1/1252
    [InlineData("donâ€™t", "don't")] // …including 1252's curly quote, then uncurled
    [InlineData("Ã\u0083Â©", "é")] // two layers deep
    [InlineData("café", "café")] // genuine latin-1 text is left alone
    [InlineData("\u201chi\u201d \u2018x\u2019", "\"hi\" 'x'")]
    [InlineData("ﬁne ﬂour", "fine flour")]
    [InlineData("ＡＢＣ１２３　ｘ", "ABC123 x")]
    [InlineData("ｶﾀｶﾅ", "カタカナ")]
    [InlineData("e\u0301", "é")] // NFC
    [InlineData("\u1100\u1161\u11A8", "각")] // Hangul composition
    [InlineData("a\u0007b\u001b[31mc\u001b[0m\ufeff", "abc")]
    public void Text_fixer_fixes(string input, string expected) => Assert.Equal(expected, TextFixer.Fix(input));

    [Theory]
    [InlineData("rock &amp; roll", "rock & roll")]
    [InlineData("&amp;amp;", "&amp;")] // one level per call
    [InlineData("fish &amp chips", "fish & chips")] // legacy name without ';'
    [InlineData("&ampchips", "&chips")] // longest legacy prefix
    [InlineData("&notit;", "¬it;")]
    [InlineData("&#39;&#x27;&#X27", "'''")]
    [InlineData("&#0;&#x110000;&#xD800;", "\uFFFD\uFFFD\uFFFD")]
    [InlineData("&#128;&#x7f;", "€")] // C1 read as windows-1252; DEL dropped
    [InlineData("&bogus; &", "&bogus; &")]
    [InlineData("&NotNestedGreaterGreater;", "\u2AA2\u0338")]
    public void Html_unescape_matches_python(string input, string expected) => Assert.Equal(expected, HtmlUnescape.Unescape(input));

    [Theory]
    [InlineData("ΟΔΟΣ", "οδος")]
    [InlineData("ΣΑΣ ΟΣ.", "σας ος.")]
    [InlineData("İ", "i\u0307")]
    [InlineData("Σ", "σ")]
    public void Lower_case_follows_python(string input, string expected) => Assert.Equal(expected, UnicodeText.PythonLower(input));

    [Fact]
    public void Clip_pretokenizer_keeps_astral_letters_together()
    {
        const string s = "𝐀𝐁c 123 don't 😀!!";
        var tokens = ClipTokenizer.PreTokenize(s).Select(t => s.Substring(t.Start, t.Length)).ToArray();
        Assert.Equal(["𝐀𝐁c", "1", "2", "3", "don", "'t", "😀!!"], tokens);
    }

    [Fact]
    public void Gpt2_pretokenizer_splits_like_the_regex()
    {
        const string s = "Hello  world's\n\nend 42 !? ";
        var tokens = RobertaTokenizer.PreTokenize(s).Select(t => s.Substring(t.Start, t.Length)).ToArray();
        Assert.Equal(["Hello", " ", " world", "'s", "\n", "\n", "end", " 42", " !?", " "], tokens);
    }

    private void AssertAllEqual(string[] corpus, long[][] expected, Func<string, long[]> actual, string what)
    {
        Assert.Equal(corpus.Length, expected.Length);
        var mismatches = new List<string>();
        for (var i = 0; i < corpus.Length; i++)
        {
            var got = actual(corpus[i]);
            if (!got.SequenceEqual(expected[i]))
                mismatches.Add($"#{i} {JsonSerializer.Serialize(corpus[i])}: got [{string.Join(',', got.TakeWhile((_, k) => k < 20))}] want [{string.Join(',', expected[i].TakeWhile((_, k) => k < 20))}]");
        }

        output.WriteLine($"{what}: {mismatches.Count} mismatches out of {corpus.Length}");
        Assert.True(mismatches.Count == 0, string.Join('\n', mismatches));
    }
}
