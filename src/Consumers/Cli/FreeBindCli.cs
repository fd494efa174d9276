using System.CommandLine;
using FreeBind.Encoding.Spaces;

namespace FreeBind.Consumers.Cli;

/// <summary>The <c>freebind</c> command line.</summary>
internal static class FreeBindCli
{
    public static readonly Option<string?> Space = new("--space", "-s") { Description = "Space name (a manifest in the spaces folder) or path to a manifest .json; default Spaces:Default" };
    public static readonly Option<string?> Models = new("--models", "-m") { Description = "Model root the manifest's files are relative to; default Spaces:ModelRoot" };
    public static readonly Option<string?> Preset = new("--preset") { Description = "Named factor preset of the space, e.g. versatile or at-expertise" };
    public static readonly Option<string[]> Presets = new("--preset")
    {
        Description = "Named factor preset of the space, e.g. versatile or at-expertise; repeat to get the vectors of each (one line per item and preset)",
    };
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

    /// <summary>One factor choice per <c>--preset</c> (or the manifest's factors when none is given), each with the <c>--factor</c> overrides.</summary>
    public static IReadOnlyList<FactorSelection> Selections(ParseResult result)
    {
        var overrides = result.GetValue(Factor) ?? [];
        var presets = result.GetValue(Presets) is { Length: > 0 } p ? p.Distinct(StringComparer.Ordinal).Select(s => (string?)s) : [null];
        return [.. presets.Select(name => FactorSelection.Parse(name, overrides))];
    }

    /// <summary>How a factor choice is named in output: its preset, or "manifest factors".</summary>
    public static string Label(FactorSelection selection) =>
        (selection.Preset is { } p ? "preset " + p : "manifest factors") +
        (selection.Overrides.Count > 0 ? " with " + string.Join(", ", selection.Overrides) : "");

    /// <summary>
    /// Runs a command body; every failure ends as one clear message on stderr, never a stack trace.
    /// Exit codes: 0 done; 1 a setting, option, space or input file is wrong (nothing useful was
    /// done); 2 some input lines were rejected and the output holds the others (fuse); 130 interrupted.
    /// </summary>
    public static async Task<int> Guard(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (SpaceChoiceException e)
        {
            foreach (var error in e.Errors) await Console.Error.WriteLineAsync("error: " + error.Message);
            return 1;
        }
        catch (Exception e) when (e is SpaceValidationException or FormatException or ArgumentException or InvalidDataException
                                      or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException
                                      or FreeBind.Encoding.ModelOutputException or FreeBind.Encoding.Preprocessing.MediaException
                                      or Microsoft.Extensions.Options.OptionsValidationException)
        {
            await Console.Error.WriteLineAsync("error: " + Message(e));
            return 1;
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("interrupted");
            return 130;
        }
        catch (Exception e)
        {
            // A failure nobody foresaw: still one line; the trace only on request.
            await Console.Error.WriteLineAsync($"error: unexpected {e.GetType().Name}: {Message(e)}" +
                (Environment.GetEnvironmentVariable("FREEBIND_TRACE") == "1" ? "\n" + e : " (set FREEBIND_TRACE=1 for the stack trace)"));
            return 1;
        }
    }

    // ArgumentException appends " (Parameter 'x')", which means nothing to a user.
    private static string Message(Exception e) => e is ArgumentException { ParamName: { } name } a
        ? a.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal)
        : e.Message;
}
