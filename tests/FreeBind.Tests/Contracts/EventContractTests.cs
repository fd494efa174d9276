using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FreeBind.Consumers.Contracts;
using FreeBind.Encoding;

namespace FreeBind.Tests.Contracts;

/// <summary>The contract types against docs/events.md: every example and table there reads into them and back unchanged.</summary>
public sealed partial class EventContractTests
{
    private static readonly string Doc = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "events.md"));
    private static readonly EventLimits Limits = new(512 * 1024, 16 * 1024);

    private static string Section(string heading)
    {
        var start = Doc.IndexOf("## " + heading, StringComparison.Ordinal);
        Assert.True(start >= 0, $"docs/events.md has no section '{heading}'");
        var end = Doc.IndexOf("\n## ", start + 3, StringComparison.Ordinal);
        return end < 0 ? Doc[start..] : Doc[start..end];
    }

    private static List<string> JsonBlocks(string section) =>
        [.. JsonBlock().Matches(section).Select(m => m.Groups[1].Value)];

    [Fact]
    public void Every_input_example_parses_into_the_event_it_shows()
    {
        var lines = JsonBlocks(Section("Input")).SelectMany(SplitObjects).ToList();
        Assert.Equal(4, lines.Count);
        var events = lines.Select(l => MediaEventParser.Parse(System.Text.Encoding.UTF8.GetBytes(l), JsonNode.Parse(l)!["id"]!.GetValue<string>(), Limits)).ToList();

        Assert.Equal(new MediaEvent("img-0001", "acme", MediaEventType.Upserted, Modality.Image, new MediaSource.Link(new Uri("file:///srv/media/dog.jpg")),
            null, "image/jpeg", """{"album": "pets"}"""), events[0]);
        Assert.Equal(MediaEventType.Upserted, events[1].Type);
        Assert.Equal("a dog barking", Assert.IsType<MediaSource.Text>(events[1].Source).Value);
        Assert.Equal(MediaEventType.Deleted, events[2].Type);
        Assert.Null(events[2].Source);
        Assert.Equal(MediaEvent.SchemaVersion, events[3].Schema);
        var inline = Assert.IsType<MediaSource.Inline>(events[3].Source).Bytes;
        Assert.Equal("a cat asleep on a sofa", System.Text.Encoding.UTF8.GetString(inline));
        Assert.Equal(MediaEventParser.Sha256Hex(inline), events[3].Sha256); // the documented digest is the content's
    }

    [Fact]
    public void Every_input_example_round_trips_through_the_input_record_field_by_field_and_the_examples_cover_every_documented_field()
    {
        var lines = JsonBlocks(Section("Input")).SelectMany(SplitObjects).ToList();
        var written = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in lines)
        {
            var parsed = MediaEventParser.Parse(System.Text.Encoding.UTF8.GetBytes(line), null, Limits);
            var json = parsed.ToUtf8Json();
            var example = JsonNode.Parse(line)!.AsObject();
            var back = JsonNode.Parse(json)!.AsObject();
            Assert.Equal(example.Select(p => p.Key).Order(StringComparer.Ordinal), back.Select(p => p.Key).Order(StringComparer.Ordinal));
            foreach (var (field, value) in example)
                Assert.True(JsonNode.DeepEquals(value, back[field]), $"{field}: documented {value?.ToJsonString()}, written {back[field]?.ToJsonString()}");
            // And what is written reads back into the same event.
            var again = MediaEventParser.Parse(json, parsed.Id, Limits);
            Assert.Equal(parsed with { Source = null }, again with { Source = null });
            Assert.Equal(Describe(parsed.Source), Describe(again.Source));
            written.UnionWith(back.Select(p => p.Key));
        }
        // Every field of the table, and the optional schema field, appears in some example.
        var documented = TableFirstColumn(Section("Input")).Select(f => f.Trim('`')).Append("schema").ToHashSet(StringComparer.Ordinal);
        Assert.Equal(documented.Order(StringComparer.Ordinal), written.Order(StringComparer.Ordinal));
    }

    private static string Describe(MediaSource? source) => source switch
    {
        MediaSource.Inline d => "data:" + Convert.ToBase64String(d.Bytes),
        null => "none",
        _ => source.ToString(),
    };

    [Fact]
    public void The_output_example_round_trips_through_the_output_record()
    {
        var example = Assert.Single(JsonBlocks(Section("Output")));
        var parsed = MediaEmbedded.Parse(System.Text.Encoding.UTF8.GetBytes(example));

        Assert.Equal("img-0001", parsed.Id);
        Assert.Equal(1, parsed.Schema);
        Assert.Equal([new EmbeddedTag("dog", 0.31f, 3)], parsed.Tags);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(example), JsonNode.Parse(parsed.ToUtf8Json())), "the record drops or adds a field of the documented example");
        // Every field of the table is in the record, and no other.
        var documented = TableFirstColumn(Section("Output")).SelectMany(f => f.Split(',', StringSplitOptions.TrimEntries)).Select(f => f.Trim('`')).ToHashSet();
        Assert.Equal(documented.Order(), JsonNode.Parse(parsed.ToUtf8Json())!.AsObject().Select(p => p.Key).Order());
    }

    [Fact]
    public void The_dead_letter_headers_are_the_documented_ones_with_their_documented_formats()
    {
        var rows = Table(Section("Dead letters")).Where(r => r[0].StartsWith("`freebind.", StringComparison.Ordinal))
            .ToDictionary(r => r[0].Trim('`'), r => r[1].Trim('`'));
        var letter = new DeadLetter("unknown-modality", rows[DeadLetterHeaders.ErrorMessage], rows[DeadLetterHeaders.SourceTopic],
            int.Parse(rows[DeadLetterHeaders.SourcePartition]), long.Parse(rows[DeadLetterHeaders.SourceOffset]),
            int.Parse(rows[DeadLetterHeaders.Attempts]), DateTimeOffset.Parse(rows[DeadLetterHeaders.FailedAt], System.Globalization.CultureInfo.InvariantCulture));
        var headers = DeadLetterHeaders.ToHeaders(letter).ToList();

        // The documented examples are exactly what the worker writes, header by header.
        foreach (var (name, value) in headers.Where(h => h.Name != DeadLetterHeaders.ErrorClass))
            Assert.Equal(rows[name], System.Text.Encoding.UTF8.GetString(value));
        Assert.Equal(letter, DeadLetterHeaders.Read(headers));
        // The optional headers of a copy without its value, with their documented examples, field by field.
        var dropped = letter with { ValueDropped = true, ValueBytes = long.Parse(Example(rows[DeadLetterHeaders.ValueBytes])), ValueSha256 = Example(rows[DeadLetterHeaders.ValueSha256]) };
        var droppedHeaders = DeadLetterHeaders.ToHeaders(dropped).ToList();
        Assert.Empty(droppedHeaders.Select(h => h.Name).Except(rows.Keys));
        foreach (var name in new[] { DeadLetterHeaders.ValueDropped, DeadLetterHeaders.ValueBytes, DeadLetterHeaders.ValueSha256 })
            Assert.Equal(Example(rows[name]), System.Text.Encoding.UTF8.GetString(droppedHeaders.Single(h => h.Name == name).Value));
        Assert.Equal(dropped, DeadLetterHeaders.Read(droppedHeaders));
    }

    [Fact]
    public void The_documented_error_classes_are_the_ones_the_worker_uses()
    {
        var documented = Table(Section("Dead letters")).Select(r => r[0]).Where(c => c.StartsWith('`') && !c.StartsWith("`freebind.", StringComparison.Ordinal))
            .Select(c => c.Trim('`')).ToHashSet();
        var constants = typeof(ErrorClasses).GetFields().Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).ToHashSet();
        constants.Add(ErrorClasses.Decode("<kind>"));
        Assert.Equal(constants.Order(), documented.Order());
    }

    // The example of a cell such as "`true` (only on a copy without its value)" (read with its outer backticks trimmed): its code span.
    private static string Example(string cell) => cell.Contains('`', StringComparison.Ordinal) ? cell[..cell.IndexOf('`', StringComparison.Ordinal)] : cell;

    private static List<string> SplitObjects(string block)
    {
        var reader = new Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(block), new JsonReaderOptions { AllowMultipleValues = true });
        var objects = new List<string>();
        while (reader.Read())
            using (var doc = JsonDocument.ParseValue(ref reader))
                objects.Add(doc.RootElement.GetRawText());
        return objects;
    }

    private static List<string[]> Table(string section) =>
        [.. section.Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith("| ---", StringComparison.Ordinal))
            .Select(l => l.Trim().Trim('|').Split(" | ").Select(c => c.Trim()).ToArray())];

    private static IEnumerable<string> TableFirstColumn(string section) => Table(section).Skip(1).Select(r => r[0]);

    [GeneratedRegex("```json\\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex JsonBlock();
}
