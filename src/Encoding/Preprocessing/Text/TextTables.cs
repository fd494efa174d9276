using System.Globalization;
using System.Text;

namespace FreeBind.Encoding.Preprocessing.Text;

/// <summary>
/// Lazily parsed views of the generated data in TextTables.g.cs. The repo runs with invariant
/// globalization (no ICU), where string.Normalize is a no-op, so NFC and the few NFKC mappings
/// ftfy applies come from tables generated from Python's unicodedata (the reference's own data).
/// </summary>
internal static partial class TextTables
{
    private static readonly Lazy<Dictionary<string, string>> Entities = new(() =>
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in HtmlEntityData.Split('\u0002', StringSplitOptions.RemoveEmptyEntries))
        {
            var sep = entry.IndexOf('\u0001', StringComparison.Ordinal);
            map[entry[..sep]] = entry[(sep + 1)..];
        }

        return map;
    });

    private static readonly Lazy<Dictionary<string, string>> UpperEntities = new(() =>
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in UpperEntityData.Split('\u0002', StringSplitOptions.RemoveEmptyEntries))
        {
            var sep = entry.IndexOf('\u0001', StringComparison.Ordinal);
            map[entry[..sep]] = entry[(sep + 1)..];
        }

        return map;
    });

    private static readonly Lazy<Dictionary<int, string>> Width = new(() =>
    {
        var map = new Dictionary<int, string>();
        foreach (var entry in WidthData.Split('\u0002', StringSplitOptions.RemoveEmptyEntries))
        {
            var rune = Rune.GetRuneAt(entry, 0);
            map[rune.Value] = entry[rune.Utf16SequenceLength..];
        }

        return map;
    });

    private static readonly Lazy<Dictionary<int, int[]>> Decompositions = new(() =>
    {
        var map = new Dictionary<int, int[]>();
        foreach (var entry in DecompositionData.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var sep = entry.IndexOf(':', StringComparison.Ordinal);
            map[Hex(entry[..sep])] = [.. entry[(sep + 1)..].Split('.').Select(Hex)];
        }

        return map;
    });

    private static readonly Lazy<Dictionary<int, byte>> CombiningClasses = new(() =>
    {
        var map = new Dictionary<int, byte>();
        foreach (var entry in CombiningClassData.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var sep = entry.IndexOf(':', StringComparison.Ordinal);
            map[Hex(entry[..sep])] = byte.Parse(entry[(sep + 1)..], CultureInfo.InvariantCulture);
        }

        return map;
    });

    private static readonly Lazy<Dictionary<long, int>> Compositions = new(() =>
    {
        var map = new Dictionary<long, int>();
        foreach (var entry in CompositionData.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var colon = entry.IndexOf(':', StringComparison.Ordinal);
            var dot = entry.IndexOf('.', StringComparison.Ordinal);
            map[Pair(Hex(entry[..dot]), Hex(entry[(dot + 1)..colon]))] = Hex(entry[(colon + 1)..]);
        }

        return map;
    });

    /// <summary>HTML5 named references, keyed with their ';' where the standard has one.</summary>
    public static IReadOnlyDictionary<string, string> HtmlEntities => Entities.Value;

    /// <summary>
    /// ftfy's extra entity spellings: an all-lowercase HTML5 name (with ';') written in upper case,
    /// where Python's html.unescape leaves that spelling alone, decodes to the upper-cased character.
    /// </summary>
    public static IReadOnlyDictionary<string, string> UpperCasedHtmlEntities => UpperEntities.Value;

    /// <summary>ftfy's ligature and character-width replacements.</summary>
    public static IReadOnlyDictionary<int, string> WidthReplacements => Width.Value;

    public static IReadOnlyDictionary<int, int[]> CanonicalDecompositions => Decompositions.Value;

    public static byte CombiningClass(int codePoint) =>
        codePoint < 0x300 ? (byte)0 : CombiningClasses.Value.GetValueOrDefault(codePoint);

    public static bool TryCompose(int first, int second, out int composite) =>
        Compositions.Value.TryGetValue(Pair(first, second), out composite);

    private static long Pair(int a, int b) => ((long)a << 21) | (uint)b;

    private static int Hex(string s) => int.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}
