using System.CommandLine;
using FreeBind.Encoding;
using FreeBind.Encoding.Fusion;
using FreeBind.Encoding.Spaces;
using Microsoft.Extensions.DependencyInjection;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind fuse</c>: atoms (expert embeddings) in, space vectors out. The re-fusion path of a
/// backfill: it never runs an encoder, and reads no encoder file (their digests, which name the
/// version, come from <c>--digests</c> or the digest cache).
/// </summary>
internal static class FuseCommand
{
    /// <summary>The outcome of a run: lines read (blank ones aside), lines rejected, vectors written.</summary>
    public sealed record Result(int Lines, int Rejected, int Vectors);

    public static Command Build()
    {
        var input = new Option<FileInfo>("--input", "-i") { Description = "JSON lines {\"id\",\"modality\",\"experts\":{\"<expert>\":[floats]}} (an embed --output file works as it is)", Required = true };
        var output = new Option<FileInfo>("--output", "-o") { Description = "JSON lines {\"id\",\"modality\",\"space_version\",\"preset\"?,\"vector\"}, one per item and preset", Required = true };
        var digests = new Option<FileInfo?>("--digests")
        {
            Description = "JSON with the digests of the space's files (`freebind spaces show --json`): the encoder and tokenizer files need not be under --models then",
        };
        var command = new Command("fuse", """
            Fuse expert embeddings (atoms) into vectors of a space, without encoders.
            Exit codes: 0 every line fused; 1 a wrong option, space, model folder or input file (no output); 2 some lines rejected (each reported on stderr, the output holds the others).
            """)
        {
            FreeBindCli.Space, FreeBindCli.Models, FreeBindCli.Presets, FreeBindCli.Factor, digests, input, output,
        };
        command.SetAction((result, ct) => FreeBindCli.Guard(async () =>
        {
            var inputPath = result.GetValue(input)!.FullName;
            var outputPath = result.GetValue(output)!.FullName;
            if (!File.Exists(inputPath)) throw new FileNotFoundException($"input file '{inputPath}' does not exist");
            if (string.Equals(inputPath, outputPath, StringComparison.Ordinal)) throw new ArgumentException("--output must differ from --input (the input would be overwritten before it is read)");
            var known = result.GetValue(digests) is { } file ? SpaceFiles.Parse(await File.ReadAllTextAsync(file.FullName, ct), file.FullName) : null;

            using var host = CliHost.Build();
            var catalog = host.Services.GetRequiredService<ManifestCatalog>();
            var spaces = new List<(SpaceDefinition Space, string? Preset)>();
            foreach (var selection in FreeBindCli.Selections(result))
            {
                var space = catalog.Load(result.GetValue(FreeBindCli.Space), result.GetValue(FreeBindCli.Models),
                    new SpaceLoadOptions { Factors = selection, Use = SpaceUse.Fuse, KnownFiles = known ?? spaces.FirstOrDefault().Space?.Files });
                spaces.Add((space, selection.Preset));
                await Console.Error.WriteLineAsync($"space {space.Name} {space.Version} ({FreeBindCli.Label(selection)}; {space.Dimension}-d)");
            }
            var run = await RunAsync(host.Services.GetRequiredService<FusionEngine>(), spaces, inputPath, outputPath, ct);
            await Console.Error.WriteLineAsync(run.Rejected == 0
                ? $"fused {run.Lines} of {run.Lines} lines: {Vectors(run.Vectors)} → {outputPath}"
                : $"{run.Rejected} of {run.Lines} lines rejected; {run.Lines - run.Rejected} fused: {Vectors(run.Vectors)} → {outputPath} (exit code 2)");
            return run.Rejected == 0 ? 0 : 2;
        }));
        return command;
    }

    private static string Vectors(int n) => n == 1 ? "1 vector" : $"{n} vectors";

    /// <summary>Fuses every line into each space; rejected lines are reported on stderr with their line number and item.</summary>
    public static async Task<Result> RunAsync(FusionEngine engine, IReadOnlyList<(SpaceDefinition Space, string? Preset)> spaces,
        string inputPath, string outputPath, CancellationToken ct)
    {
        // Lines are fused concurrently in windows, so the micro-batchers see full batches while
        // memory stays bounded for archive-sized inputs; output keeps the input order.
        const int Window = 4096;
        foreach (var (space, _) in spaces) engine.Prepare(space);
        int lines = 0, rejected = 0, lineNumber = 0;
        await using var stream = File.Create(outputPath);
        var writer = new VectorLines(stream);
        foreach (var window in File.ReadLines(inputPath).Chunk(Window))
        {
            var tasks = window.Select(line => string.IsNullOrWhiteSpace(line) ? null : Task.Run(() => FuseLineAsync(engine, spaces, line, ct), ct)).ToList();
            foreach (var task in tasks)
            {
                lineNumber++;
                if (task is null) continue;
                lines++;
                try
                {
                    var (id, modality, vectors) = await task;
                    for (var s = 0; s < spaces.Count; s++)
                        await writer.WriteAsync(id, modality, spaces[s].Space.Version, spaces[s].Preset, vectors[s], null, ct);
                }
                catch (Exception e) when (e is FormatException or ArgumentException or ModelOutputException)
                {
                    rejected++;
                    await Console.Error.WriteLineAsync($"rejected line {lineNumber}: {e.Message}");
                }
            }
        }
        return new Result(lines, rejected, writer.Written);
    }

    private static async Task<(string Id, Modality Modality, float[][] Vectors)> FuseLineAsync(
        FusionEngine engine, IReadOnlyList<(SpaceDefinition Space, string? Preset)> spaces, string line, CancellationToken ct)
    {
        var (id, modality, atoms) = AtomLine.Parse(line);
        var vectors = new float[spaces.Count][];
        try
        {
            for (var s = 0; s < spaces.Count; s++) vectors[s] = await engine.FuseAsync(spaces[s].Space, modality, atoms, ct);
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"item '{id}': {e.Message}", e);
        }
        return (id, modality, vectors);
    }
}
