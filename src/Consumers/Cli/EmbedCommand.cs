using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using FreeBind.Encoding;
using FreeBind.Encoding.Fusion;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using Microsoft.Extensions.DependencyInjection;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind embed</c>: media files and text → atoms → vectors, printing cross-modal similarity
/// matrices as upstream's inference.py does (softmax over 10·cosine), once per factor choice.
/// </summary>
internal static class EmbedCommand
{
    private sealed record Item(string Id, Modality Modality, Embedding Embedding);

    public static Command Build()
    {
        var images = new Option<string[]>("--image") { Description = "Image file (repeatable)", AllowMultipleArgumentsPerToken = true };
        var audios = new Option<string[]>("--audio") { Description = "Audio file (repeatable)", AllowMultipleArgumentsPerToken = true };
        var texts = new Option<string[]>("--text") { Description = "Text (repeatable)", AllowMultipleArgumentsPerToken = true };
        var tensors = new Option<string[]>("--tensor")
        {
            Description = "Model-ready tensors instead of media: expert.modality[.input]=file.npy (repeatable; see `freebind preprocess`)",
        };
        var output = new Option<FileInfo?>("--output", "-o")
        {
            Description = "Write JSON lines {id, modality, space_version, preset?, vector, experts}, one per item and preset (the atoms, ready for `freebind fuse`)",
        };
        var command = new Command("embed", "Embed images, audio and text into a space and print similarity matrices")
        {
            FreeBindCli.Space, FreeBindCli.Models, FreeBindCli.Presets, FreeBindCli.Factor, images, audios, texts, tensors, output,
        };
        command.SetAction((result, ct) => FreeBindCli.Guard(async () =>
        {
            using var host = CliHost.Build();
            var catalog = host.Services.GetRequiredService<ManifestCatalog>();
            var embedder = host.Services.GetRequiredService<Embedder>();
            var selections = FreeBindCli.Selections(result);
            // Every factor choice is loaded (and so checked) before any media is read. The first
            // is loaded for embedding; the others only re-fuse its atoms, so they read no encoder.
            var spaces = new List<SpaceDefinition>();
            foreach (var selection in selections)
                spaces.Add(catalog.Load(result.GetValue(FreeBindCli.Space), result.GetValue(FreeBindCli.Models), spaces.Count == 0
                    ? new SpaceLoadOptions { Factors = selection }
                    : new SpaceLoadOptions { Factors = selection, Use = SpaceUse.Fuse, KnownFiles = spaces[0].Files }));
            var space = spaces[0];
            Console.Error.WriteLine($"space {space.Name} ({space.Dimension}-d) models {space.ModelRoot}");
            // A version covers the factors: each factor choice is its own version.
            for (var s = 0; s < spaces.Count; s++) Console.Error.WriteLine($"  {spaces[s].Version}  {FreeBindCli.Label(selections[s])}");
            embedder.Prepare(space);

            var items = new List<Item>();
            var jobs = new List<(string Id, Modality Modality, Task<Embedding> Task)>();
            foreach (var path in result.GetValue(images) ?? []) jobs.Add((Path.GetFileName(path), Modality.Image, EmbedFile(embedder, space, Modality.Image, path, ct)));
            foreach (var path in result.GetValue(audios) ?? []) jobs.Add((Path.GetFileName(path), Modality.Audio, EmbedFile(embedder, space, Modality.Audio, path, ct)));
            var t = 0;
            foreach (var text in result.GetValue(texts) ?? []) jobs.Add((TextId(text, t++), Modality.Text, embedder.EmbedAsync(space, MediaInput.FromText(text), ct)));
            jobs.AddRange(TensorJobs(embedder, space, result.GetValue(tensors) ?? [], ct));
            if (jobs.Count == 0) throw new ArgumentException("nothing to embed: give --image, --audio, --text or --tensor");
            foreach (var (id, modality, task) in jobs) items.Add(new Item(id, modality, await task));

            var vectors = new List<float[]>[spaces.Count];
            for (var s = 0; s < spaces.Count; s++)
            {
                vectors[s] = [];
                foreach (var item in items)
                    vectors[s].Add(s == 0 ? item.Embedding.Vector : await embedder.Fusion.FuseAsync(spaces[s], item.Modality, item.Embedding.Atoms, ct));
            }
            if (result.GetValue(output) is { } file)
            {
                await using var stream = File.Create(file.FullName);
                var writer = new VectorLines(stream);
                for (var i = 0; i < items.Count; i++)
                    for (var s = 0; s < spaces.Count; s++)
                        await writer.WriteAsync(items[i].Id, items[i].Modality, spaces[s].Version, selections[s].Preset, vectors[s][i], items[i].Embedding.Atoms, ct);
                Console.Error.WriteLine($"wrote {writer.Written} lines ({items.Count} items × {spaces.Count} factor choice{(spaces.Count == 1 ? "" : "s")}) → {file.FullName}");
            }
            for (var s = 0; s < spaces.Count; s++)
                PrintMatrices(spaces[s], selections[s], [.. items.Select((item, i) => (item.Id, item.Modality, vectors[s][i]))]);
            return 0;
        }));
        return command;
    }

    private static async Task<Embedding> EmbedFile(Embedder embedder, SpaceDefinition space, Modality modality, string path, CancellationToken ct)
    {
        byte[] bytes;
        try
        {
            bytes = await File.ReadAllBytesAsync(path, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"cannot read '{path}': {e.Message}", e);
        }
        return await embedder.EmbedAsync(space, new MediaInput(modality, bytes, FileName: path), ct);
    }

    /// <summary>Groups --tensor files by modality; every expert the modality needs must be given.</summary>
    private static IEnumerable<(string, Modality, Task<Embedding>)> TensorJobs(Embedder embedder, SpaceDefinition space, string[] specs, CancellationToken ct)
    {
        var byModality = new Dictionary<Modality, Dictionary<string, List<(string Input, NpyArray Array)>>>();
        foreach (var spec in specs)
        {
            var eq = spec.IndexOf('=');
            var key = eq > 0 ? spec[..eq].Split('.') : [];
            if (key.Length is < 2 or > 3 || !ModalityNames.TryParse(key[1], out var modality))
                throw new FormatException($"--tensor '{spec}' is not of the form expert.modality[.input]=file.npy");
            var perExpert = byModality.TryGetValue(modality, out var d) ? d : byModality[modality] = new(StringComparer.Ordinal);
            if (!perExpert.TryGetValue(key[0], out var list)) perExpert[key[0]] = list = [];
            list.Add((key.Length == 3 ? key[2] : "", Npy.Read(spec[(eq + 1)..])));
        }
        foreach (var (modality, perExpert) in byModality)
        {
            var plan = space.Plans.TryGetValue(modality, out var p) ? p : throw new ArgumentException($"space '{space.Name}' does not serve {modality.ToName()}");
            var missing = plan.Experts.Where(e => !perExpert.ContainsKey(e)).ToList();
            if (missing.Count > 0) throw new ArgumentException($"--tensor for {modality.ToName()} needs every expert of the plan; missing {string.Join(", ", missing)}");
            var count = -1;
            var split = new Dictionary<string, List<PreprocessedItem>>(StringComparer.Ordinal);
            foreach (var expert in plan.Experts)
            {
                var clips = space.EncoderOf(expert, modality).Clips;
                var inputs = perExpert[expert];
                var items = inputs[0].Array.Shape[0] / clips;
                if (count >= 0 && items != count) throw new ArgumentException($"--tensor files for {modality.ToName()} disagree on the number of items");
                count = items;
                split[expert] = Enumerable.Range(0, items).Select(i => new PreprocessedItem(inputs.Select(x => Slice(x.Input, x.Array, i * clips, clips)).ToList())).ToList();
            }
            for (var i = 0; i < count; i++)
            {
                var byExpert = plan.Experts.ToDictionary(e => e, e => split[e][i], StringComparer.Ordinal);
                yield return ($"{modality.ToName()}-tensor-{i}", modality, embedder.EmbedPreprocessedAsync(space, modality, byExpert, ct));
            }
        }
    }

    private static ModelTensor Slice(string name, NpyArray array, int row, int rows)
    {
        var shape = (int[])array.Shape.Clone();
        var rowLength = (int)(array.Count / shape[0]);
        shape[0] = rows;
        return array.Floats is not null
            ? ModelTensor.Float32(name, shape, array.Floats.AsSpan(row * rowLength, rows * rowLength).ToArray())
            : ModelTensor.Int64(name, shape, array.Longs!.AsSpan(row * rowLength, rows * rowLength).ToArray());
    }

    private static void PrintMatrices(SpaceDefinition space, FactorSelection selection, List<(string Id, Modality Modality, float[] Vector)> vectors)
    {
        var inv = CultureInfo.InvariantCulture;
        var factors = string.Join(", ", space.Manifest.Bonds.SelectMany(b => b.Factors.Select(f => $"{b.Id}.{f.Key}={f.Value.ToString(inv)}")));
        Console.WriteLine($"---- {space.Name} {space.ShortVersion}{(selection.Preset is { } p ? $" preset {p}" : "")}{(factors.Length > 0 ? $" ({factors})" : "")} ----");
        foreach (var (a, b) in new[] { (Modality.Audio, Modality.Image), (Modality.Audio, Modality.Text), (Modality.Image, Modality.Text) })
        {
            var rows = vectors.Where(v => v.Modality == a).ToList();
            var cols = vectors.Where(v => v.Modality == b).ToList();
            if (rows.Count == 0 || cols.Count == 0) continue;
            var sb = new StringBuilder();
            sb.Append(CultureInfo.InvariantCulture, $"{Title(a)} x {Title(b)} (softmax over 10·cosine):\n");
            foreach (var row in rows)
            {
                var logits = cols.Select(c => 10f * System.Numerics.Tensors.TensorPrimitives.Dot(row.Vector, c.Vector)).ToArray();
                var probabilities = new float[logits.Length];
                System.Numerics.Tensors.TensorPrimitives.SoftMax(logits, probabilities);
                sb.Append(CultureInfo.InvariantCulture, $"  {row.Id,-24} [{string.Join(", ", probabilities.Select(x => x.ToString("0.0000", inv)))}]\n");
            }
            sb.Append(CultureInfo.InvariantCulture, $"  columns: {string.Join(", ", cols.Select(c => c.Id))}\n");
            Console.Write(sb.ToString());
        }
    }

    // Short texts are their own label in the matrices; long ones get a numbered prefix.
    private static string TextId(string text, int index) => text.Length <= 24 ? $"\"{text}\"" : $"text-{index} \"{text[..20]}…\"";

    private static string Title(Modality m) => m switch { Modality.Audio => "Audio", Modality.Image => "Image", _ => "Text" };
}
