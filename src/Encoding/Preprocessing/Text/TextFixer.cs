using System.Text;

namespace FreeBind.Encoding.Preprocessing.Text;

/// <summary>
/// "ftfy-lite": the deterministic part of <c>ftfy.fix_text</c>'s defaults that CLIP relies on,
/// specified identically in tools/reference/preprocess_image_text.py (Debian has no ftfy):
/// lone surrogates → U+FFFD; terminal colour escapes removed; whole-string mojibake (UTF-8 read as
/// windows-1252/latin-1, up to three layers) undone when the bytes decode strictly as UTF-8;
/// ligatures and full/half-width forms → NFKC; curly quotes → ASCII; control characters removed;
/// NFC. ftfy's statistical "badness" heuristics (partial-string mojibake, mixed encodings) are not
/// reproduced; see docs/preprocessing.md.
/// </summary>
public static class TextFixer
{
    private static readonly System.Text.Encoding StrictUtf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);

    // windows-1252 bytes 0x80–0x9F; the five undefined ones stand for themselves ("sloppy" 1252).
    // C1 controls U+0080–U+009F map to their byte as well, so latin-1 mojibake is undone too.
    private static readonly string Cp1252High =
        "\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F" +
        "\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178";

    private static readonly Dictionary<char, byte> SloppyBytes = BuildSloppyBytes();

    public static string Fix(string text)
    {
        var s = UnicodeText.ReplaceLoneSurrogates(text);
        s = StripTerminalEscapes(s);
        s = FixMojibake(s);

        var sb = new StringBuilder(s.Length);
        foreach (var rune in s.EnumerateRunes())
        {
            var cp = rune.Value;
            if (TextTables.WidthReplacements.TryGetValue(cp, out var replacement))
                sb.Append(replacement);
            else if (cp is 0x2BC or >= 0x2018 and <= 0x201B)
                sb.Append('\'');
            else if (cp is >= 0x201C and <= 0x201F)
                sb.Append('"');
            else if (!IsControl(cp))
                sb.Append(rune.ToString());
        }

        return UnicodeText.Nfc(sb.ToString());
    }

    /// <summary>Undoes UTF-8 that was decoded as windows-1252 or latin-1 ("cafÃ©" → "café").</summary>
    public static string FixMojibake(string s)
    {
        for (var layer = 0; layer < 3; layer++)
        {
            var bytes = new byte[s.Length];
            var high = false;
            for (var i = 0; i < s.Length; i++)
            {
                if (!SloppyBytes.TryGetValue(s[i], out var b))
                    return s; // a character no single-byte decoding could have produced
                bytes[i] = b;
                high |= b >= 0x80;
            }

            if (!high)
                return s;
            string fixedText;
            try
            {
                fixedText = StrictUtf8.GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                return s; // not UTF-8 underneath: the text was genuinely latin-1/1252
            }

            if (fixedText == s)
                return s;
            s = fixedText;
        }

        return s;
    }

    private static string StripTerminalEscapes(string s)
    {
        if (!s.Contains('\u001B', StringComparison.Ordinal))
            return s;
        var sb = new StringBuilder(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\u001B' && i + 1 < s.Length && s[i + 1] == '[')
            {
                var j = i + 2;
                while (j < s.Length && (char.IsAsciiDigit(s[j]) || s[j] == ';')) j++;
                if (j < s.Length && char.IsAsciiLetter(s[j]))
                {
                    i = j;
                    continue;
                }
            }

            sb.Append(s[i]);
        }

        return sb.ToString();
    }

    private static bool IsControl(int cp) =>
        cp is <= 0x08 or 0x0B or >= 0x0E and <= 0x1F or 0x7F or >= 0x206A and <= 0x206F or 0xFEFF
            or >= 0xFFF9 and <= 0xFFFC or >= 0x1D173 and <= 0x1D17A or >= 0xE0000 and <= 0xE007F;

    private static Dictionary<char, byte> BuildSloppyBytes()
    {
        var map = new Dictionary<char, byte>();
        for (var b = 0; b < 256; b++)
        {
            map[(char)b] = (byte)b; // latin-1, including the C1 controls
            if (b is >= 0x80 and < 0xA0)
                map[Cp1252High[b - 0x80]] = (byte)b;
        }

        return map;
    }
}
