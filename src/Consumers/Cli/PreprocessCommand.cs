using System.CommandLine;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using Microsoft.Extensions.DependencyInjection;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind preprocess</c>: writes exactly the tensor a profile feeds its model as a NumPy
/// .npy file, so a user can diff it against their own Python pipeline.
/// </summary>
internal static class PreprocessCommand
{
    public static Command Build()
    {
        var profile = new Option<string>("--profile", "-p") { Description = "Preprocessing profile, e.g. imagebind-vision, imagebind-audio, imagebind-text", Required = true };
        var tokenizer = new Option<string[]>("--tokenizer")
        {
            Description = "Tokenizer file(s) the profile reads, in manifest order (text profiles); default: the files a space's manifest names for the profile, under the model root",
        };
        var output = new Option<FileInfo>("--output", "-o") { Description = "Output .npy (float32 or int64, C order); a second model input goes to OUT.<input>.npy", Required = true };
        var source = new Argument<string>("input") { Description = "A media file, or the text itself for text profiles" };
        var command = new Command("preprocess", "Write the model-ready tensor of one input as .npy")
        {
            profile, tokenizer, FreeBindCli.Space, FreeBindCli.Models, output, source,
        };
        command.SetAction((result, ct) => FreeBindCli.Guard(async () =>
        {
            using var host = CliHost.Build();
            var options = host.Services.GetRequiredService<PreprocessingOptions>();
            var name = result.GetValue(profile)!;
            if (!PreprocessorRegistry.IsKnown(name))
                throw new ArgumentException($"unknown profile '{name}' (profiles: {string.Join(", ", PreprocessorRegistry.Profiles.Order(StringComparer.Ordinal))})");
            var files = result.GetValue(tokenizer) is { Length: > 0 } given
                ? given.Select(Path.GetFullPath).ToList()
                : TokenizerFiles(host.Services.GetRequiredService<ManifestCatalog>(), name, result.GetValue(FreeBindCli.Space), result.GetValue(FreeBindCli.Models));
            var preprocessor = PreprocessorRegistry.Create(name, files, options);
            var value = result.GetValue(source)!;
            var input = preprocessor.Modality == Modality.Text
                ? MediaInput.FromText(value)
                : new MediaInput(preprocessor.Modality, await ReadAsync(value, ct), FileName: value);
            var item = preprocessor.Process(input);
            var path = result.GetValue(output)!.FullName;
            for (var i = 0; i < item.Inputs.Count; i++)
            {
                var target = i == 0 ? path : Path.ChangeExtension(path, null) + "." + item.Inputs[i].Name + ".npy";
                Npy.Write(target, item.Inputs[i]);
                Console.WriteLine($"{item.Inputs[i].Name} [{string.Join(',', item.Inputs[i].Shape)}] {(item.Inputs[i].IsFloat ? "float32" : "int64")} → {target}");
            }
            return 0;
        }));
        return command;
    }

    private static async Task<byte[]> ReadAsync(string path, CancellationToken ct)
    {
        try
        {
            return await File.ReadAllBytesAsync(path, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"cannot read '{path}': {e.Message}", e);
        }
    }

    /// <summary>
    /// The tokenizer files a profile reads, as a manifest names them for that profile (the chosen
    /// space first, then the default, then every other), found under the model root. Profiles
    /// without tokenizers get none.
    /// </summary>
    private static List<string> TokenizerFiles(ManifestCatalog catalog, string profile, string? space, string? models)
    {
        var root = catalog.ModelRoot(models);
        var names = new List<string>();
        if (space is not null) names.Add(space);
        else names.AddRange(new[] { catalog.Options.Default }.Concat(catalog.Names()).Distinct(StringComparer.Ordinal));
        var wanted = new List<IReadOnlyList<string>>();
        foreach (var name in names)
        {
            SpaceManifest manifest;
            try
            {
                manifest = SpaceLoader.ReadManifest(catalog.ManifestPath(name));
            }
            catch (Exception e) when (e is SpaceValidationException or SpaceChoiceException && space is null)
            {
                continue; // a broken or missing manifest among many says nothing about this profile
            }
            foreach (var spec in manifest.Experts.Values.SelectMany(e => e.Modalities.Values))
                if (spec.Profile == profile && spec.Tokenizer.Count > 0 && !wanted.Any(w => w.SequenceEqual(spec.Tokenizer)))
                    wanted.Add(spec.Tokenizer);
        }
        if (wanted.Count == 0) return []; // the profile reads no tokenizer (or no manifest knows it: the profile says what it needs)
        foreach (var files in wanted)
        {
            var paths = files.Select(f => Path.Combine(root, f)).ToList();
            if (paths.All(File.Exists))
            {
                Console.Error.WriteLine($"tokenizer: {string.Join(", ", paths)}");
                return paths;
            }
        }
        throw new ArgumentException(
            $"profile '{profile}' reads {string.Join(" + ", wanted[0])}, which is not under the model root '{root}': give --models DIR (the folder of your exports) or --tokenizer FILE");
    }
}
