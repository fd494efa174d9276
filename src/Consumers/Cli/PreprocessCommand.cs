using System.CommandLine;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
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
        var tokenizer = new Option<string[]>("--tokenizer") { Description = "Tokenizer file(s) the profile reads, in manifest order (text profiles)" };
        var output = new Option<FileInfo>("--output", "-o") { Description = "Output .npy (float32 or int64, C order); a second model input goes to OUT.<input>.npy", Required = true };
        var source = new Argument<string>("input") { Description = "A media file, or the text itself for text profiles" };
        var command = new Command("preprocess", "Write the model-ready tensor of one input as .npy") { profile, tokenizer, output, source };
        command.SetAction((result, ct) => FreeBindCli.Guard(async () =>
        {
            using var host = CliHost.Build();
            var options = host.Services.GetRequiredService<PreprocessingOptions>();
            var preprocessor = PreprocessorRegistry.Create(result.GetValue(profile)!, (result.GetValue(tokenizer) ?? []).Select(Path.GetFullPath).ToList(), options);
            var value = result.GetValue(source)!;
            var input = preprocessor.Modality == Modality.Text
                ? MediaInput.FromText(value)
                : new MediaInput(preprocessor.Modality, await File.ReadAllBytesAsync(value, ct), FileName: value);
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
}
