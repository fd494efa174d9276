using System.Globalization;
using System.Text;

namespace FreeBind.Encoding.Preprocessing.Text;

/// <summary>The Python string operations the upstream tokenizers rely on, reproduced without ICU.</summary>
internal static class UnicodeText
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    /// <summary>Unicode NFC (decompose, canonical order, compose), as unicodedata.normalize('NFC').</summary>
    public static string Nfc(string s)
    {
        var ascii = true;
        foreach (var ch in s)
        {
            if (ch >= 0x300)
            {
                ascii = false;
                break;
            }
        }

        if (ascii)
            return s; // nothing below U+0300 decomposes into something that recomposes differently

        var cps = new List<int>(s.Length + 8);
        foreach (var rune in s.EnumerateRunes())
            Decompose(rune.Value, cps);
        CanonicalOrder(cps);
        Compose(cps);

        var sb = new StringBuilder(s.Length);
        foreach (var cp in cps)
            sb.Append(char.ConvertFromUtf32(cp));
        return sb.ToString();
    }

    private static void Decompose(int cp, List<int> into)
    {
        var s = cp - SBase;
        if (s is >= 0 and < SCount)
        {
            into.Add(LBase + s / NCount);
            into.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0)
                into.Add(TBase + s % TCount);
            return;
        }

        if (TextTables.CanonicalDecompositions.TryGetValue(cp, out var d))
            into.AddRange(d);
        else
            into.Add(cp);
    }

    private static void CanonicalOrder(List<int> cps)
    {
        // Stable insertion sort of each run of non-starters by combining class.
        for (var i = 1; i < cps.Count; i++)
        {
            var c = TextTables.CombiningClass(cps[i]);
            if (c == 0)
                continue;
            var j = i;
            while (j > 0 && TextTables.CombiningClass(cps[j - 1]) > c)
            {
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
                j--;
            }
        }
    }

    private static void Compose(List<int> cps)
    {
        var output = new List<int>(cps.Count);
        var starter = -1;
        var lastClass = -1; // class of the last char kept after the starter; −1: none yet
        foreach (var cp in cps)
        {
            var cc = TextTables.CombiningClass(cp);
            if (starter >= 0)
            {
                var blocked = lastClass != -1 && (lastClass == 0 || lastClass >= cc);
                if (!blocked && TryComposePair(output[starter], cp, out var composite))
                {
                    output[starter] = composite;
                    continue;
                }
            }

            if (cc == 0)
            {
                starter = output.Count;
                lastClass = -1;
            }
            else
            {
                lastClass = cc;
            }

            output.Add(cp);
        }

        cps.Clear();
        cps.AddRange(output);
    }

    private static bool TryComposePair(int a, int b, out int composite)
    {
        if (a - LBase is >= 0 and < LCount && b - VBase is >= 0 and < VCount)
        {
            composite = SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
            return true;
        }

        if (a - SBase is >= 0 and < SCount && (a - SBase) % TCount == 0 && b - TBase is > 0 and < TCount)
        {
            composite = a + (b - TBase);
            return true;
        }

        return TextTables.TryCompose(a, b, out composite);
    }

    /// <summary>Python's str.lower(): simple lowercase plus the unconditional İ expansion and final sigma.</summary>
    public static string PythonLower(string s)
    {
        var sb = new StringBuilder(s.Length);
        var runes = s.EnumerateRunes().ToArray();
        for (var i = 0; i < runes.Length; i++)
        {
            var r = runes[i];
            if (r.Value == 0x130)
                sb.Append("i\u0307");
            else if (r.Value == 0x3A3)
                sb.Append(IsFinalSigma(runes, i) ? 'ς' : 'σ');
            else
                sb.Append(Rune.ToLowerInvariant(r).ToString());
        }

        return sb.ToString();
    }

    // Final_Sigma: cased (case-ignorable)* Σ, not followed by (case-ignorable)* cased.
    private static bool IsFinalSigma(Rune[] runes, int i)
    {
        var j = i - 1;
        while (j >= 0 && IsCaseIgnorable(runes[j])) j--;
        if (j < 0 || !IsCased(runes[j]))
            return false;
        j = i + 1;
        while (j < runes.Length && IsCaseIgnorable(runes[j])) j++;
        return j == runes.Length || !IsCased(runes[j]);
    }

    private static bool IsCased(Rune r) =>
        Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    private static bool IsCaseIgnorable(Rune r) =>
        Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
            or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
        || r.Value is '\'' or '.' or ':' or 0xB7 or 0x387 or 0x5F4 or 0x2018 or 0x2019 or 0x2024 or 0x2027 or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;

    /// <summary>Python regex \p{L}.</summary>
    public static bool IsLetter(Rune r) =>
        Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter;

    /// <summary>Python regex \p{N}.</summary>
    public static bool IsNumber(Rune r) =>
        Rune.GetUnicodeCategory(r) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    /// <summary>Python regex \s (Unicode White_Space), which is what Rune.IsWhiteSpace tests.</summary>
    public static bool IsSpace(Rune r) => Rune.IsWhiteSpace(r);

    /// <summary>Collapses every whitespace run to one space and trims (CLIP's whitespace_clean).</summary>
    public static string CollapseWhitespace(string s)
    {
        var sb = new StringBuilder(s.Length);
        var pendingSpace = false;
        foreach (var r in s.EnumerateRunes())
        {
            if (IsSpace(r))
            {
                pendingSpace = sb.Length > 0;
                continue;
            }

            if (pendingSpace)
                sb.Append(' ');
            pendingSpace = false;
            sb.Append(r.ToString());
        }

        return sb.ToString();
    }

    /// <summary>Lone surrogates (not representable in UTF-8) become U+FFFD, as ftfy's fix_surrogates does.</summary>
    public static string ReplaceLoneSurrogates(string s)
    {
        StringBuilder? sb = null;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                sb?.Append(c).Append(s[i + 1]);
                i++;
                continue;
            }

            if (char.IsSurrogate(c))
            {
                sb ??= new StringBuilder(s, 0, i, s.Length);
                sb.Append('\uFFFD');
                continue;
            }

            sb?.Append(c);
        }

        return sb?.ToString() ?? s;
    }
}
