using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using FreeBind.Encoding;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// One line of <c>fuse</c> input: <c>{"id","modality","experts":{"&lt;expert&gt;":[numbers]}}</c>
/// (other members, such as an embed output's <c>vector</c>, are read past). Every problem is
/// reported with the item id when it can be found, and the exact place: <c>experts.clap[3]</c>.
/// </summary>
internal static partial class AtomLine
{
    public static (string Id, Modality Modality, Dictionary<string, float[]> Atoms) Parse(string line)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(line);
        string? id = null, modality = null, property = null, expert = null;
        var index = -1;
        var sawExperts = false;
        var atoms = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { MaxDepth = 64, AllowMultipleValues = true });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) throw Error(null, null, "a line must be a JSON object");
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                property = reader.GetString()!;
                reader.Read();
                switch (property)
                {
                    case "id":
                        id = reader.TokenType == JsonTokenType.String ? reader.GetString()! : throw Error(id, "id", $"is {Kind(reader.TokenType)}, not a string");
                        break;
                    case "modality":
                        modality = reader.TokenType == JsonTokenType.String ? reader.GetString()! : throw Error(id, "modality", $"is {Kind(reader.TokenType)}, not a string");
                        break;
                    case "experts":
                        sawExperts = true;
                        if (reader.TokenType != JsonTokenType.StartObject) throw Error(id, "experts", $"is {Kind(reader.TokenType)}, not an object of expert → numbers");
                        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                        {
                            expert = reader.GetString()!;
                            index = -1;
                            reader.Read();
                            if (reader.TokenType != JsonTokenType.StartArray) throw Error(id, $"experts.{expert}", $"is {Kind(reader.TokenType)}, not an array of numbers");
                            var values = new List<float>(1024);
                            for (index = 0; reader.Read() && reader.TokenType != JsonTokenType.EndArray; index++)
                                values.Add(Number(ref reader, id, expert, index));
                            if (!atoms.TryAdd(expert, [.. values])) throw Error(id, $"experts.{expert}", "appears twice");
                            expert = null;
                            index = -1;
                        }
                        break;
                    default:
                        reader.Skip();
                        break;
                }
                property = null;
            }
            if (reader.Read()) throw Error(id, null, "more than one JSON value on the line");
        }
        catch (JsonException e)
        {
            // Invalid JSON: say where, in the line's own terms, and what was found there.
            var where = expert is not null ? index >= 0 ? $"experts.{expert}[{index}]" : $"experts.{expert}" : property;
            throw Error(id ?? FindId(line), where, Describe(bytes, (int)(e.BytePositionInLine ?? 0), e.Message));
        }
        catch (InvalidOperationException e)
        {
            // A string that is not valid Unicode (a lone surrogate escape) cannot be read as text.
            throw Error(id ?? FindId(line), expert is not null ? $"experts.{expert}" : property, $"is not valid Unicode text ({e.Message.TrimEnd('.')})");
        }
        if (id is null) throw Error(null, null, "missing string field 'id'");
        if (!ModalityNames.TryParse(modality, out var parsed))
            throw Error(id, "modality", modality is null ? "is missing (image, audio or text)" : $"'{modality}' is not image, audio or text");
        if (!sawExperts) throw Error(id, null, "missing object field 'experts'");
        return (id, parsed, atoms);
    }

    private static float Number(ref Utf8JsonReader reader, string? id, string expert, int index)
    {
        var where = $"experts.{expert}[{index}]";
        if (reader.TokenType != JsonTokenType.Number) throw Error(id, where, $"is {Kind(reader.TokenType)}, not a number");
        var text = System.Text.Encoding.UTF8.GetString(reader.ValueSpan);
        if (!reader.TryGetDouble(out var value) || !double.IsFinite(value) || Math.Abs(value) > float.MaxValue)
            throw Error(id, where, $"= {text} is beyond the float32 range of an atom (±3.4e38)");
        return (float)value;
    }

    private static FormatException Error(string? id, string? where, string message) =>
        new($"{(id is null ? "" : $"item '{id}': ")}{(where is null ? "" : where + " ")}{message}");

    private static string Kind(JsonTokenType token) => token switch
    {
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.StartObject => "an object",
        _ => "not a value",
    };

    // The parser's own words name a character and a byte offset; a NaN or Infinity written by a
    // non-JSON writer is the usual cause, so name it.
    private static string Describe(byte[] line, int at, string parserMessage)
    {
        var start = Math.Clamp(at, 0, line.Length);
        var end = start;
        while (end < line.Length && end - start < 24 && (char.IsAsciiLetterOrDigit((char)line[end]) || line[end] is (byte)'-' or (byte)'+' or (byte)'.')) end++;
        var token = System.Text.Encoding.UTF8.GetString(line, start, end - start);
        if (NonFinite().IsMatch(token)) return $"is {token}, not a finite number: JSON has no NaN or Infinity, and an atom must be finite (the encoder that produced it failed)";
        var reason = parserMessage.Split(" LineNumber:", 2)[0].TrimEnd('.');
        return start >= line.Length ? $"is cut off: the line ends before the JSON does ({reason})" : $"is not valid JSON at character {start + 1}: {reason}";
    }

    /// <summary>The id of a line that does not parse, found by its shape, so even a broken line is reported by item.</summary>
    private static string? FindId(string line)
    {
        var match = IdField().Match(line);
        if (!match.Success) return null;
        try
        {
            return JsonSerializer.Deserialize<string>("\"" + match.Groups[1].Value + "\"");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    [GeneratedRegex("^[+-]?(nan|inf|infinity)$", RegexOptions.IgnoreCase)]
    private static partial Regex NonFinite();

    [GeneratedRegex("\"id\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"")]
    private static partial Regex IdField();
}
