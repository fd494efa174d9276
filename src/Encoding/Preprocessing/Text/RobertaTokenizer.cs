using System.Text;
using System.Text.Json;

namespace FreeBind.Encoding.Preprocessing.Text;

/// <summary>
/// HF <c>RobertaTokenizer</c> (GPT-2 byte-level BPE) as CLAP calls it: no prefix space, no
/// normalisation, special-token literals split out, &lt;s&gt; … &lt;/s&gt;, truncation to max_length,
/// right padding with &lt;pad&gt;.
/// Microsoft.ML.Tokenizers' EnglishRobertaTokenizer is fairseq's variant (it needs dict.txt and
/// remaps ids), so HF's vocab.json ids are produced with the shared BPE here instead.
/// </summary>
public sealed class RobertaTokenizer
{
    public const int ContextLength = 77;

    // RobertaTokenizer's special tokens; <mask> is AddedToken(lstrip=True).
    private static readonly string[] MaskLiteral = ["<mask>"];

    private readonly BytePairEncoder _bpe;
    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _specials;

    private RobertaTokenizer(BytePairEncoder bpe, Dictionary<string, int> vocab)
    {
        _bpe = bpe;
        _vocab = vocab;
        Bos = vocab.GetValueOrDefault("<s>", 0);
        Pad = vocab.GetValueOrDefault("<pad>", 1);
        Eos = vocab.GetValueOrDefault("</s>", 2);
        Unk = vocab.GetValueOrDefault("<unk>", 3);
        _specials = [.. new[] { "<s>", "</s>", "<unk>", "<pad>", "<mask>" }.Where(vocab.ContainsKey)];
    }

    public int Bos { get; }

    public int Pad { get; }

    public int Eos { get; }

    public int Unk { get; }

    /// <summary>Loads HF's vocab.json and merges.txt.</summary>
    public static RobertaTokenizer Load(string vocabPath, string mergesPath)
    {
        Dictionary<string, int> vocab;
        using (var f = File.OpenRead(vocabPath))
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(f) ?? throw new InvalidDataException($"{vocabPath}: empty vocabulary");

        // As HF's RobertaTokenizer reads it: read().split("\n")[1:-1], so the first line (the
        // "#version" header) and whatever follows the last newline are not merges.
        var lines = File.ReadAllText(mergesPath).Split('\n');
        var merges = new List<(string, string)>();
        foreach (var line in lines.AsSpan(1, Math.Max(lines.Length - 2, 0)))
        {
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0)
                continue; // HF keeps an empty tuple, which never matches a pair
            if (parts.Length != 2)
                throw new InvalidDataException($"{mergesPath}: '{line}' is not a merge pair");
            merges.Add((parts[0], parts[1]));
        }

        return new RobertaTokenizer(new BytePairEncoder(merges, endOfWord: null), vocab);
    }

    /// <summary>
    /// Ids of the text without the &lt;s&gt;/&lt;/s&gt; around it. A special token's literal in the text
    /// is that token, as in HF's slow tokenizer (&lt;mask&gt; also takes the whitespace before it).
    /// </summary>
    public List<int> Encode(string text)
    {
        var ids = new List<int>();
        foreach (var (piece, special) in SpecialTokenSplit.Split(text, _specials, MaskLiteral))
        {
            if (special)
            {
                ids.Add(_vocab[piece]);
                continue;
            }
            foreach (var (start, length) in PreTokenize(piece))
                foreach (var symbol in _bpe.Encode(BytePairEncoder.MapBytes(piece.AsSpan(start, length))))
                    ids.Add(_vocab.TryGetValue(symbol, out var id) ? id : Unk);
        }
        return ids;
    }

    /// <summary>input_ids and attention_mask, each <paramref name="length"/> long.</summary>
    public (long[] Ids, long[] Mask) Tokenize(string text, int length = ContextLength)
    {
        var ids = Encode(text);
        var n = Math.Min(ids.Count, length - 2);
        var result = new long[length];
        var mask = new long[length];
        Array.Fill(result, Pad);
        result[0] = Bos;
        for (var i = 0; i < n; i++)
            result[i + 1] = ids[i];
        result[n + 1] = Eos;
        mask.AsSpan(0, n + 2).Fill(1);
        return (result, mask);
    }

    /// <summary>
    /// GPT-2's pattern by code point: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    /// </summary>
    internal static IEnumerable<(int Start, int Length)> PreTokenize(string s)
    {
        var i = 0;
        while (i < s.Length)
        {
            var c = Contraction(s.AsSpan(i));
            if (c > 0)
            {
                yield return (i, c);
                i += c;
                continue;
            }

            // Optional single leading space, then a run of one class.
            var j = s[i] == ' ' && i + 1 < s.Length ? i + 1 : i;
            var r = Rune.GetRuneAt(s, j);
            Func<Rune, bool>? inClass =
                UnicodeText.IsLetter(r) ? UnicodeText.IsLetter
                : UnicodeText.IsNumber(r) ? UnicodeText.IsNumber
                : !UnicodeText.IsSpace(r) ? q => !UnicodeText.IsSpace(q) && !UnicodeText.IsLetter(q) && !UnicodeText.IsNumber(q)
                : null;
            if (inClass is not null)
            {
                var k = j;
                while (k < s.Length && Rune.TryGetRuneAt(s, k, out var q) && inClass(q))
                    k += q.Utf16SequenceLength;
                yield return (i, k - i);
                i = k;
                continue;
            }

            // Whitespace run: leave its last char to prefix the next word (\s+(?!\S)), else take it all.
            var end = i;
            while (end < s.Length && Rune.TryGetRuneAt(s, end, out var q) && UnicodeText.IsSpace(q))
                end += q.Utf16SequenceLength;
            if (end < s.Length)
            {
                var last = end - 1; // whitespace is never astral
                if (last > i)
                {
                    yield return (i, last - i);
                    i = last;
                    continue;
                }
            }

            yield return (i, end - i);
            i = end;
        }
    }

    private static int Contraction(ReadOnlySpan<char> s)
    {
        if (s.Length < 2 || s[0] != '\'')
            return 0;
        if (s[1] is 's' or 't')
            return 2;
        if (s.Length > 2 && ((s[1] == 'r' && s[2] == 'e') || (s[1] == 'v' && s[2] == 'e') || (s[1] == 'l' && s[2] == 'l')))
            return 3;
        return s[1] is 'm' or 'd' ? 2 : 0;
    }
}
