using System.Text;

namespace FreeBind.Encoding.Preprocessing.Text;

/// <summary>
/// <c>ftfy.fix_text</c> with its default settings, as ftfy 6.1.3 (the version FreeBind ran) does it,
/// except for the statistical mojibake detection (Debian has no ftfy, and its "badness" heuristics are
/// not reproduced). Like ftfy, the text is fixed line by line, and each line is put through the
/// fixers below, in ftfy's order, again and again until nothing changes:
/// HTML entities (unless the text so far contains '&lt;'), mojibake, C1 controls read as
/// windows-1252, Latin ligatures, full/half-width forms, curly quotes, line breaks, lone
/// surrogates, terminal escapes, control characters, NFC.
/// Mojibake is undone only when the whole line, read back as windows-1252 or latin-1 bytes, is
/// strict UTF-8 (up to three layers per pass). ftfy also repairs mojibake inside otherwise clean
/// text, restores a byte A0 that became a space ("Ã " → "à") and tries other code pages; the
/// committed fixture tests/fixtures/upstream/clip-text.json records where that makes us differ.
/// </summary>
public static class TextFixer
{
    private static readonly System.Text.Encoding StrictUtf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);

    // windows-1252 bytes 0x80–0x9F; the five undefined ones stand for themselves ("sloppy" 1252).
    private static readonly string Cp1252High =
        "\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F" +
        "\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178";

    // C1 controls U+0080–U+009F map to their byte as well, so latin-1 mojibake is undone too.
    private static readonly Dictionary<char, byte> SloppyBytes = BuildSloppyBytes();

    public static string Fix(string text)
    {
        // ftfy.fix_text: segments end after each '\n'; once a segment contains '<', HTML entities
        // are left alone from there on (the text may be HTML, whose entities are meant literally).
        var unescapeHtml = true;
        var sb = new StringBuilder(text.Length);
        for (var pos = 0; pos < text.Length;)
        {
            var end = text.IndexOf('\n', pos) + 1;
            if (end == 0) end = text.Length;
            var segment = text[pos..end];
            if (unescapeHtml && segment.Contains('<', StringComparison.Ordinal)) unescapeHtml = false;
            sb.Append(FixSegment(segment, unescapeHtml));
            pos = end;
        }

        return sb.ToString();
    }

    private static string FixSegment(string text, bool unescapeHtml)
    {
        while (true)
        {
            var original = text;
            if (unescapeHtml) text = UnescapeHtml(text);
            text = FixMojibake(text);
            text = FixC1Controls(text);
            text = MapCharacters(text);
            text = FixLineBreaks(text);
            text = UnicodeText.ReplaceLoneSurrogates(text);
            text = StripTerminalEscapes(text);
            text = RemoveControlCharacters(text);
            text = UnicodeText.Nfc(text);
            if (text == original) return text;
        }
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

    /// <summary>
    /// ftfy's <c>unescape_html</c>: only complete references <c>&amp;name;</c>, <c>&amp;#nn;</c>,
    /// <c>&amp;#xhh;</c> (1–24 letters or digits), named ones from HTML5 or their upper-cased
    /// spelling, numeric ones as Python's html.unescape decodes them.
    /// </summary>
    private static string UnescapeHtml(string s)
    {
        if (!s.Contains('&', StringComparison.Ordinal)) return s;
        var sb = new StringBuilder(s.Length);
        var i = 0;
        while (i < s.Length)
        {
            var amp = s.IndexOf('&', i);
            if (amp < 0) break;
            sb.Append(s, i, amp - i);
            var j = amp + 1;
            if (j < s.Length && s[j] == '#') j++;
            var start = j;
            while (j < s.Length && j - start < 24 && char.IsAsciiLetterOrDigit(s[j])) j++;
            if (j > start && j < s.Length && s[j] == ';')
            {
                var reference = s[amp..(j + 1)];
                sb.Append(DecodeReference(reference));
                i = j + 1;
            }
            else
            {
                sb.Append('&');
                i = amp + 1;
            }
        }

        sb.Append(s, i, s.Length - i);
        return sb.ToString();
    }

    private static string DecodeReference(string reference)
    {
        if (reference[1] != '#')
            return TextTables.HtmlEntities.TryGetValue(reference[1..], out var named) ? named
                : TextTables.UpperCasedHtmlEntities.TryGetValue(reference[1..], out var upper) ? upper
                : reference;
        // html.unescape decoding only part of the reference leaves its ';' behind: keep it as it was.
        var decoded = HtmlUnescape.Unescape(reference);
        return decoded.Contains(';', StringComparison.Ordinal) ? reference : decoded;
    }

    private static string FixC1Controls(string s)
    {
        if (!s.AsSpan().ContainsAnyInRange('\u0080', '\u009F')) return s;
        var chars = s.ToCharArray();
        for (var i = 0; i < chars.Length; i++)
            if (chars[i] is >= '\u0080' and <= '\u009F')
                chars[i] = Cp1252High[chars[i] - 0x80];
        return new string(chars);
    }

    /// <summary>ftfy's ligature, character-width and quote replacements (each one pass, in that order).</summary>
    private static string MapCharacters(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var rune in s.EnumerateRunes())
            sb.Append(TextTables.WidthReplacements.TryGetValue(rune.Value, out var replacement) ? replacement : rune.ToString());
        var mapped = sb.ToString();
        sb.Clear();
        foreach (var c in mapped)
            sb.Append(c is '\u02BC' or >= '\u2018' and <= '\u201B' ? '\'' : c is >= '\u201C' and <= '\u201F' ? '"' : c);
        return sb.ToString();
    }

    private static string FixLineBreaks(string s) =>
        s.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n').Replace('\u2028', '\n')
            .Replace('\u2029', '\n').Replace('\u0085', '\n');

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
                while (j < s.Length && (char.IsDigit(s[j]) || s[j] == ';')) j++;
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

    // ftfy 6.1.3's CONTROL_CHARS: C0 except tab/LF/FF/CR, DEL, the deprecated format characters
    // U+206A–206F, the BOM and U+FFF9–FFFC (tag characters are kept: emoji flags use them).
    private static string RemoveControlCharacters(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s)
            if (c is not (<= '\u0008' or '\u000B' or >= '\u000E' and <= '\u001F' or '\u007F' or >= '\u206A' and <= '\u206F' or '\uFEFF' or >= '\uFFF9' and <= '\uFFFC'))
                sb.Append(c);
        return sb.Length == s.Length ? s : sb.ToString();
    }

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
