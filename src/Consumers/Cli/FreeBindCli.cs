using System.CommandLine;
using FreeBind.Encoding.Spaces;

namespace FreeBind.Consumers.Cli;

/// <summary>The <c>freebind</c> command line.</summary>
internal static class FreeBindCli
{
    public static readonly Option<string?> Space = new("--space", "-s") { Description = "Space name (a manifest in the spaces folder) or path to a manifest .json; default Spaces:Default" };
    public static readonly Option<string?> Models = new("--models", "-m") { Description = "Model root the manifest's files are relative to; default Spaces:ModelRoot" };
    public static readonly Option<string?> Preset = new("--preset") { Description = "Named factor preset of the space, e.g. versatile or at-expertise" };
    public static readonly Option<string[]> Factor = new("--factor", "-f")
    {
        Description = "Factor override [bond.]modality=f (repeatable); an unqualified modality sets the last bond that blends it",
        AllowMultipleArgumentsPerToken = false,
    };

    public static RootCommand Build()
    {
        var root = new RootCommand("FreeBind.Pipeline: media → vectors in a FreeBind unified multimodal space");
        root.Subcommands.Add(SpacesCommand.Build());
        root.Subcommands.Add(FuseCommand.Build());
        root.Subcommands.Add(EmbedCommand.Build());
        root.Subcommands.Add(PreprocessCommand.Build());
        root.Subcommands.Add(RunCommand.Build());
        root.Subcommands.Add(MigrateCommand.Build());
        root.Subcommands.Add(TagsCommand.Build());
        root.Subcommands.Add(DemoCommand.Build());
        root.Subcommands.Add(ReembedCommand.Build());
        root.Subcommands.Add(OnnxRunCommand.Build());
        return root;
    }

    public static FactorSelection Factors(ParseResult result) =>
        FactorSelection.Parse(result.GetValue(Preset), result.GetValue(Factor) ?? []);

    /// <summary>Runs a command body, turning expected failures into one clear line on stderr and exit code 1.</summary>
    public static async Task<int> Guard(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e) when (e is SpaceValidationException or FormatException or ArgumentException or InvalidDataException
                                      or FileNotFoundException or DirectoryNotFoundException or FreeBind.Encoding.ModelOutputException
                                      or FreeBind.Encoding.Preprocessing.MediaException
                                      or Microsoft.Extensions.Options.OptionsValidationException)
        {
            await Console.Error.WriteLineAsync("error: " + e.Message);
            return 1;
        }
    }
}
