using System.Globalization;
using System.Text;

namespace FreeBind.Encoding.Preprocessing.Text;

/// <summary>
/// Python's <c>html.unescape</c> (which CLIP applies twice): all HTML5 named references, the
/// legacy ones without ';', longest-prefix matching, and the standard's numeric fix-ups.
/// WebUtility.HtmlDecode knows only HTML 4 names and needs the ';', so it would change tokens.
/// </summary>
internal static class HtmlUnescape
{
    // Numeric references the HTML standard remaps (C1 range read as windows-1252, NUL, CR).
    private static readonly Dictionary<int, string> InvalidCharRefs = new()
    {
        [0x00] = "\uFFFD", [0x0D] = "\r", [0x80] = "\u20AC", [0x81] = "\u0081", [0x82] = "\u201A", [0x83] = "\u0192",
        [0x84] = "\u201E", [0x85] = "\u2026", [0x86] = "\u2020", [0x87] = "\u2021", [0x88] = "\u02C6", [0x89] = "\u2030",
        [0x8A] = "\u0160", [0x8B] = "\u2039", [0x8C] = "\u0152", [0x8D] = "\u008D", [0x8E] = "\u017D", [0x8F] = "\u008F",
        [0x90] = "\u0090", [0x91] = "\u2018", [0x92] = "\u2019", [0x93] = "\u201C", [0x94] = "\u201D", [0x95] = "\u2022",
        [0x96] = "\u2013", [0x97] = "\u2014", [0x98] = "\u02DC", [0x99] = "\u2122", [0x9A] = "\u0161", [0x9B] = "\u203A",
        [0x9C] = "\u0153", [0x9D] = "\u009D", [0x9E] = "\u017E", [0x9F] = "\u0178",
    };

    public static string Unescape(string s)
    {
        if (!s.Contains('&', StringComparison.Ordinal))
            return s;

        var sb = new StringBuilder(s.Length);
        var i = 0;
        while (i < s.Length)
        {
            if (s[i] == '&' && TryReference(s, i + 1, out var consumed, out var replacement))
            {
                sb.Append(replacement);
                i += 1 + consumed;
            }
            else
            {
                sb.Append(s[i]);
                i++;
            }
        }

        return sb.ToString();
    }

    private static bool TryReference(string s, int start, out int consumed, out string replacement)
    {
        consumed = 0;
        replacement = "";
        if (start >= s.Length)
            return false;

        if (s[start] == '#')
        {
            var p = start + 1;
            var hex = p < s.Length && s[p] is 'x' or 'X';
            if (hex) p++;
            var digitsStart = p;
            while (p < s.Length && (hex ? char.IsAsciiHexDigit(s[p]) : char.IsAsciiDigit(s[p]))) p++;
            if (p == digitsStart)
                return false; // '&#' or '&#x' without digits is left alone
            var digits = s[digitsStart..p];
            if (p < s.Length && s[p] == ';') p++;
            consumed = p - start;
            replacement = Numeric(digits, hex);
            return true;
        }

        // [^\t\n\f <&#;]{1,32};? counted in code points, as Python's regex does.
        var q = start;
        var count = 0;
        while (q < s.Length && count < 32 && s[q] is not ('\t' or '\n' or '\f' or ' ' or '<' or '&' or '#' or ';'))
        {
            q += char.IsHighSurrogate(s[q]) && q + 1 < s.Length && char.IsLowSurrogate(s[q + 1]) ? 2 : 1;
            count++;
        }

        if (count == 0)
            return false;
        if (q < s.Length && s[q] == ';') q++;
        var name = s[start..q];
        consumed = q - start;
        if (TextTables.HtmlEntities.TryGetValue(name, out var value))
        {
            replacement = value;
            return true;
        }

        // Longest prefix (at least two chars) that is a legacy name valid without ';'.
        var offsets = CodePointOffsets(name);
        for (var x = offsets.Count - 2; x >= 2; x--)
        {
            if (TextTables.HtmlEntities.TryGetValue(name[..offsets[x]], out value))
            {
                replacement = value + name[offsets[x]..];
                return true;
            }
        }

        replacement = "&" + name;
        return true;
    }

    // offsets[k] = UTF-16 index of the k-th code point; offsets[^1] = length.
    private static List<int> CodePointOffsets(string s)
    {
        var offsets = new List<int>(s.Length + 1);
        for (var i = 0; i < s.Length; i += char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1)
            offsets.Add(i);
        offsets.Add(s.Length);
        return offsets;
    }

    private static string Numeric(string digits, bool hex)
    {
        var trimmed = digits.TrimStart('0');
        long num;
        if (trimmed.Length > 8)
            num = long.MaxValue; // beyond U+10FFFF whatever the digits
        else
            num = trimmed.Length == 0 ? 0 : long.Parse(trimmed, hex ? NumberStyles.HexNumber : NumberStyles.None, CultureInfo.InvariantCulture);

        if (num <= 0x9F && InvalidCharRefs.TryGetValue((int)num, out var fixedUp))
            return fixedUp;
        if (num is >= 0xD800 and <= 0xDFFF || num > 0x10FFFF)
            return "\uFFFD";
        if (IsInvalidCodePoint((int)num))
            return "";
        return char.ConvertFromUtf32((int)num);
    }

    private static bool IsInvalidCodePoint(int cp) =>
        cp is >= 0x1 and <= 0x8 or 0xB or >= 0xE and <= 0x1F or >= 0x7F and <= 0x9F or >= 0xFDD0 and <= 0xFDEF
        || (cp & 0xFFFE) == 0xFFFE;
}
