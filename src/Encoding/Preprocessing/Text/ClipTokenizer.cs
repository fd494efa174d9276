using System.IO.Compression;
using System.Text;

namespace FreeBind.Encoding.Preprocessing.Text;

/// <summary>
/// CLIP's SimpleTokenizer as ImageBind uses it. Implemented here rather than with
/// Microsoft.ML.Tokenizers because that library has no CLIP tokenizer: its generic BpeTokenizer
/// has neither CLIP's text cleaning (ftfy, double HTML unescape, whitespace collapse, Python
/// lower-casing) nor its pre-tokenisation pattern, and the BPE itself is a few dozen lines.
/// </summary>
public sealed class ClipTokenizer
{
    public const int ContextLength = 77;
    public const long StartOfText = 49406;
    public const long EndOfText = 49407;

    private const string SotText = "<|startoftext|>";
    private const string EotText = "<|endoftext|>";

    private readonly BytePairEncoder _bpe;
    private readonly Dictionary<string, int> _encoder;

    private ClipTokenizer(BytePairEncoder bpe, Dictionary<string, int> encoder)
    {
        _bpe = bpe;
        _encoder = encoder;
    }

    /// <summary>Loads bpe_simple_vocab_16e6.txt.gz (gzip; a plain text merges file is accepted too).</summary>
    public static ClipTokenizer Load(string path)
    {
        using var file = File.OpenRead(path);
        var isGzip = file.ReadByte() == 0x1F && file.ReadByte() == 0x8B;
        file.Position = 0;
        using Stream stream = isGzip ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var reader = new StreamReader(stream, System.Text.Encoding.UTF8);
        var lines = reader.ReadToEnd().Split('\n');

        // CLIP keeps lines 1 .. 48894 (49152 − 256 − 2 merges) after the version header.
        const int mergeCount = 49152 - 256 - 2;
        if (lines.Length < mergeCount + 1)
            throw new InvalidDataException($"{path}: expected at least {mergeCount} merges, found {lines.Length - 1}");
        var merges = new List<(string, string)>(mergeCount);
        for (var i = 1; i <= mergeCount; i++)
        {
            var parts = lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2)
                throw new InvalidDataException($"{path}: line {i + 1} is not a merge pair");
            merges.Add((parts[0], parts[1]));
        }

        var vocab = new List<string>(49408);
        vocab.AddRange(BytePairEncoder.ByteToUnicodeInVocabOrder);
        vocab.AddRange(BytePairEncoder.ByteToUnicodeInVocabOrder.Select(c => c + "</w>"));
        vocab.AddRange(merges.Select(m => m.Item1 + m.Item2));
        vocab.Add(SotText);
        vocab.Add(EotText);
        var encoder = new Dictionary<string, int>(vocab.Count, StringComparer.Ordinal);
        for (var i = 0; i < vocab.Count; i++)
            encoder[vocab[i]] = i; // later duplicates win, as dict(zip(vocab, range(...))) does

        return new ClipTokenizer(new BytePairEncoder(merges, "</w>"), encoder);
    }

    /// <summary>The cleaned, lower-cased text CLIP tokenises.</summary>
    public static string Clean(string text)
    {
        var s = TextFixer.Fix(text);
        s = HtmlUnescape.Unescape(HtmlUnescape.Unescape(s));
        return UnicodeText.PythonLower(UnicodeText.CollapseWhitespace(s));
    }

    /// <summary>BPE ids of the text, without SOT/EOT.</summary>
    public List<int> Encode(string text)
    {
        var ids = new List<int>();
        var s = Clean(text);
        foreach (var (start, length) in PreTokenize(s))
        {
            var token = s.AsSpan(start, length);
            if (token.SequenceEqual(SotText) || token.SequenceEqual(EotText))
            {
                ids.Add(_encoder[token.ToString()]);
                continue;
            }

            foreach (var symbol in _bpe.Encode(BytePairEncoder.MapBytes(token)))
                ids.Add(_encoder[symbol]);
        }

        return ids;
    }

    /// <summary>
    /// SOT + ids + EOT, zero-padded to 77. Longer input keeps its first 75 ids and EOT last (OpenAI
    /// clip.tokenize(truncate=True)); ImageBind's copy would drop EOT, which its text head pools on.
    /// </summary>
    public long[] Tokenize(string text)
    {
        var ids = Encode(text);
        var result = new long[ContextLength];
        result[0] = StartOfText;
        var n = Math.Min(ids.Count, ContextLength - 2);
        for (var i = 0; i < n; i++)
            result[i + 1] = ids[i];
        result[n + 1] = EndOfText;
        return result;
    }

    /// <summary>
    /// CLIP's pattern, case-insensitive, by code point: &lt;|startoftext|&gt;|&lt;|endoftext|&gt;|'s|'t|'re|'ve|'m|'ll|'d|
    /// \p{L}+|\p{N}|[^\s\p{L}\p{N}]+ (hand-written because .NET's regex classes see surrogate halves,
    /// not astral letters).
    /// </summary>
    internal static IEnumerable<(int Start, int Length)> PreTokenize(string s)
    {
        var i = 0;
        while (i < s.Length)
        {
            var span = s.AsSpan(i);
            if (span.StartsWith(SotText, StringComparison.OrdinalIgnoreCase))
            {
                yield return (i, SotText.Length);
                i += SotText.Length;
                continue;
            }

            if (span.StartsWith(EotText, StringComparison.OrdinalIgnoreCase))
            {
                yield return (i, EotText.Length);
                i += EotText.Length;
                continue;
            }

            var contraction = Contraction(span);
            if (contraction > 0)
            {
                yield return (i, contraction);
                i += contraction;
                continue;
            }

            var r = Rune.GetRuneAt(s, i);
            if (UnicodeText.IsLetter(r))
            {
                var j = i;
                while (j < s.Length && Rune.TryGetRuneAt(s, j, out var q) && UnicodeText.IsLetter(q))
                    j += q.Utf16SequenceLength;
                yield return (i, j - i);
                i = j;
            }
            else if (UnicodeText.IsNumber(r))
            {
                yield return (i, r.Utf16SequenceLength);
                i += r.Utf16SequenceLength;
            }
            else if (UnicodeText.IsSpace(r))
            {
                i += r.Utf16SequenceLength;
            }
            else
            {
                var j = i;
                while (j < s.Length && Rune.TryGetRuneAt(s, j, out var q) && !UnicodeText.IsLetter(q) && !UnicodeText.IsNumber(q) && !UnicodeText.IsSpace(q))
                    j += q.Utf16SequenceLength;
                yield return (i, j - i);
                i = j;
            }
        }
    }

    // 's 't 're 've 'm 'll 'd, ASCII case-insensitive; the two-letter ones are tried in pattern order.
    private static int Contraction(ReadOnlySpan<char> s)
    {
        if (s.Length < 2 || s[0] != '\'')
            return 0;
        var a = char.ToLowerInvariant(s[1]);
        if (a is 's' or 't' or '\u017F') // ſ case-folds to s under IGNORECASE
            return 2;
        var b = s.Length > 2 ? char.ToLowerInvariant(s[2]) : '\0';
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return 3;
        if (a is 'm' or 'd')
            return 2;
        return 0;
    }
}
