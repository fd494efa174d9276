using System.CommandLine;
using System.Text.Json;
using FreeBind.Encoding;
using FreeBind.Encoding.Fusion;
using FreeBind.Encoding.Spaces;
using Microsoft.Extensions.DependencyInjection;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind fuse</c>: atoms (expert embeddings) in, space vectors out. The re-fusion path of a
/// backfill: it never runs an encoder.
/// </summary>
internal static class FuseCommand
{
    public static Command Build()
    {
        var input = new Option<FileInfo>("--input", "-i") { Description = "JSON lines {\"id\",\"modality\",\"experts\":{\"<expert>\":[floats]}}", Required = true };
        var output = new Option<FileInfo>("--output", "-o") { Description = "JSON lines {\"id\",\"modality\",\"space_version\",\"vector\"}", Required = true };
        var command = new Command("fuse", "Fuse expert embeddings (atoms) into vectors of a space, without encoders")
        {
            FreeBindCli.Space, FreeBindCli.Models, FreeBindCli.Preset, FreeBindCli.Factor, input, output,
        };
        command.SetAction((result, ct) => FreeBindCli.Guard(async () =>
        {
            using var host = CliHost.Build();
            var space = host.Services.GetRequiredService<ManifestCatalog>()
                .Load(result.GetValue(FreeBindCli.Space), result.GetValue(FreeBindCli.Models), FreeBindCli.Factors(result));
            var engine = host.Services.GetRequiredService<FusionEngine>();
            var rejected = await RunAsync(engine, space, result.GetValue(input)!.FullName, result.GetValue(output)!.FullName, ct);
            return rejected == 0 ? 0 : 2;
        }));
        return command;
    }

    /// <summary>Fuses every line; returns how many lines were rejected (each reported on stderr with its line number).</summary>
    public static async Task<int> RunAsync(FusionEngine engine, SpaceDefinition space, string inputPath, string outputPath, CancellationToken ct)
    {
        // Lines are fused concurrently in windows, so the micro-batchers see full batches while
        // memory stays bounded for archive-sized inputs; output keeps the input order.
        const int Window = 4096;
        engine.Prepare(space);
        var rejected = 0;
        var lineNumber = 0;
        await using var stream = File.Create(outputPath);
        using var writer = new Utf8JsonWriter(stream);
        foreach (var window in File.ReadLines(inputPath).Chunk(Window))
        {
            var tasks = window.Select(line => string.IsNullOrWhiteSpace(line) ? null : Task.Run(async () =>
            {
                var (id, modality, atoms) = ParseAtoms(line);
                return (id, modality, await engine.FuseAsync(space, modality, atoms, ct));
            }, ct)).ToList();
            foreach (var task in tasks)
            {
                lineNumber++;
                if (task is null) continue;
                try
                {
                    var (id, modality, vector) = await task;
                    writer.WriteStartObject();
                    writer.WriteString("id", id);
                    writer.WriteString("modality", modality.ToName());
                    writer.WriteString("space_version", space.Version);
                    writer.WriteStartArray("vector");
                    foreach (var v in vector) writer.WriteNumberValue(v);
                    writer.WriteEndArray();
                    writer.WriteEndObject();
                    await writer.FlushAsync(ct);
                    writer.Reset();
                    stream.WriteByte((byte)'\n');
                }
                catch (Exception e) when (e is FormatException or ArgumentException or ModelOutputException or JsonException)
                {
                    rejected++;
                    await Console.Error.WriteLineAsync($"rejected line {lineNumber}: {e.Message}");
                }
            }
        }
        return rejected;
    }

    public static (string Id, Modality Modality, Dictionary<string, float[]> Atoms) ParseAtoms(string line)
    {
        using var doc = JsonDocument.Parse(line);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new FormatException("a line must be a JSON object");
        var id = root.TryGetProperty("id", out var idEl) && idEl.ValueKind == JsonValueKind.String ? idEl.GetString()! : throw new FormatException("missing string field 'id'");
        if (!root.TryGetProperty("modality", out var mEl) || !ModalityNames.TryParse(mEl.GetString(), out var modality))
            throw new FormatException($"item '{id}': 'modality' must be image, audio or text");
        if (!root.TryGetProperty("experts", out var experts) || experts.ValueKind != JsonValueKind.Object)
            throw new FormatException($"item '{id}': missing object field 'experts'");
        var atoms = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var expert in experts.EnumerateObject())
        {
            if (expert.Value.ValueKind != JsonValueKind.Array) throw new FormatException($"item '{id}': experts.{expert.Name} must be an array of numbers");
            var values = new float[expert.Value.GetArrayLength()];
            var k = 0;
            foreach (var v in expert.Value.EnumerateArray())
                values[k++] = v.ValueKind == JsonValueKind.Number ? v.GetSingle() : throw new FormatException($"item '{id}': experts.{expert.Name}[{k}] is not a number");
            atoms[expert.Name] = values;
        }
        return (id, modality, atoms);
    }
}
