namespace FreeBind.Encoding.Preprocessing.Text;

/// <summary>
/// HF slow tokenizers' first step: a special token's literal in user text (<c>&lt;s&gt;</c>,
/// <c>&lt;/s&gt;</c>, <c>&lt;mask&gt;</c>…) is split out and becomes that token's id, and the text
/// between literals is tokenized piece by piece. RoBERTa's <c>&lt;mask&gt;</c> also takes the
/// whitespace before it (it is an <c>AddedToken</c> with <c>lstrip=True</c>).
/// </summary>
internal static class SpecialTokenSplit
{
    /// <summary>The pieces of <paramref name="text"/> in order: ordinary text (never empty) or a literal of <paramref name="specials"/>.</summary>
    /// <param name="text">User text.</param>
    /// <param name="specials">The special tokens' literals.</param>
    /// <param name="stripBefore">Literals that remove the whitespace just before them.</param>
    public static List<(string Piece, bool Special)> Split(string text, IReadOnlyList<string> specials, IReadOnlyCollection<string>? stripBefore = null)
    {
        var pieces = new List<(string, bool)>();
        var start = 0;
        var i = 0;
        while (i < text.Length)
        {
            var match = Longest(text, i, specials);
            if (match is null)
            {
                i++;
                continue;
            }
            var before = text[start..i];
            if (stripBefore?.Contains(match) == true)
                before = before.TrimEnd(PythonWhitespace);
            if (before.Length > 0) pieces.Add((before, false));
            pieces.Add((match, true));
            i += match.Length;
            start = i;
        }
        if (start < text.Length) pieces.Add((text[start..], false));
        return pieces;
    }

    private static string? Longest(string text, int at, IReadOnlyList<string> specials)
    {
        string? best = null;
        foreach (var s in specials)
            if ((best is null || s.Length > best.Length) && at + s.Length <= text.Length && string.CompareOrdinal(text, at, s, 0, s.Length) == 0)
                best = s;
        return best;
    }

    // Python's str.rstrip() set: .NET's white space plus the four information separators U+001C–U+001F.
    private static readonly char[] PythonWhitespace =
        [.. Enumerable.Range(0, 0x3001).Select(c => (char)c).Where(c => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f')];
}
