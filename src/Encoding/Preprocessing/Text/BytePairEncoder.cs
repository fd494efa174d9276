using System.Collections.Concurrent;
using System.Text;

namespace FreeBind.Encoding.Preprocessing.Text;

/// <summary>
/// The BPE shared by CLIP and GPT-2/RoBERTa: a word's bytes are mapped to printable characters
/// (GPT-2's bytes_to_unicode), then the adjacent pair with the lowest merge rank is merged until no
/// ranked pair remains. CLIP marks the word's last symbol with "&lt;/w&gt;"; GPT-2 does not.
/// </summary>
internal sealed class BytePairEncoder
{
    private static readonly string[] ByteChars = BuildByteChars();

    private readonly Dictionary<(string, string), int> _ranks;
    private readonly ConcurrentDictionary<string, string[]> _cache = new(StringComparer.Ordinal);
    private readonly string? _endOfWord;

    public BytePairEncoder(IEnumerable<(string First, string Second)> merges, string? endOfWord)
    {
        _ranks = [];
        var rank = 0;
        foreach (var m in merges)
            _ranks.TryAdd(m, rank++); // the first (lowest) rank wins, as in dict(zip(merges, range(...)))
        _endOfWord = endOfWord;
    }

    /// <summary>GPT-2's printable stand-in for each byte value.</summary>
    public static IReadOnlyList<string> ByteToUnicode => ByteChars;

    /// <summary>The stand-ins in GPT-2's dict order (printable bytes first): CLIP's vocabulary order.</summary>
    public static IEnumerable<string> ByteToUnicodeInVocabOrder =>
        Enumerable.Range(0, 256).Where(IsPrintable).Concat(Enumerable.Range(0, 256).Where(b => !IsPrintable(b))).Select(b => ByteChars[b]);

    /// <summary>The byte-mapped form of a pre-token (its UTF-8 bytes, one stand-in char each).</summary>
    public static string MapBytes(ReadOnlySpan<char> token)
    {
        Span<byte> buffer = token.Length <= 256 ? stackalloc byte[token.Length * 3] : new byte[System.Text.Encoding.UTF8.GetMaxByteCount(token.Length)];
        var n = System.Text.Encoding.UTF8.GetBytes(token, buffer);
        var sb = new StringBuilder(n);
        foreach (var b in buffer[..n])
            sb.Append(ByteChars[b]);
        return sb.ToString();
    }

    /// <summary>Merges one byte-mapped word into its BPE symbols.</summary>
    public string[] Encode(string mapped)
    {
        if (_cache.TryGetValue(mapped, out var cached))
            return cached;

        var word = new List<string>(mapped.Length);
        foreach (var ch in mapped)
            word.Add(ch.ToString());
        if (_endOfWord is not null)
            word[^1] += _endOfWord;

        while (word.Count > 1)
        {
            var bestRank = int.MaxValue;
            var bestAt = -1;
            for (var i = 0; i < word.Count - 1; i++)
            {
                if (_ranks.TryGetValue((word[i], word[i + 1]), out var r) && r < bestRank)
                {
                    bestRank = r;
                    bestAt = i;
                }
            }

            if (bestAt < 0)
                break;

            // Merge every non-overlapping occurrence of the best pair, left to right.
            var first = word[bestAt];
            var second = word[bestAt + 1];
            var merged = new List<string>(word.Count);
            for (var i = 0; i < word.Count; i++)
            {
                if (i < word.Count - 1 && word[i] == first && word[i + 1] == second)
                {
                    merged.Add(first + second);
                    i++;
                }
                else
                {
                    merged.Add(word[i]);
                }
            }

            word = merged;
        }

        var result = word.ToArray();
        if (_cache.Count < 100_000)
            _cache.TryAdd(mapped, result);
        return result;
    }

    private static bool IsPrintable(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    private static string[] BuildByteChars()
    {
        var map = new string[256];
        var n = 0;
        for (var b = 0; b < 256; b++)
        {
            map[b] = ((char)(IsPrintable(b) ? b : 256 + n++)).ToString();
        }

        return map;
    }
}
