using System.CommandLine;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Pipeline.Tagging;
using FreeBind.Consumers.Spaces;
using FreeBind.Persistence.Tags;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// <c>freebind tags load</c>: a tenant's label vocabulary, stored and embedded at once in every
/// version the worker writes (active and building), so tags follow whichever version is served.
/// </summary>
internal static class TagsCommand
{
    public static Command Build()
    {
        var tenant = new Option<string>("--tenant") { Description = "Tenant the vocabulary belongs to", Required = true };
        var name = new Option<string>("--vocabulary") { Description = "Vocabulary name (unique per tenant); loading again adds labels", Required = true };
        var file = new Option<FileInfo>("--file") { Description = "Labels, one per line (blank lines and lines starting with # are ignored)", Required = true };
        var load = new Command("load", "Load a label vocabulary and embed its prompts in the configured space")
        {
            tenant, name, file, FreeBindCli.Space, FreeBindCli.Models,
        };
        load.SetAction((result, ct) => FreeBindCli.Guard(() => HostedCommand.Guard(async () =>
        {
            var labels = await ReadLabelsAsync(result.GetValue(file)!.FullName, ct);
            using var host = CliHost.Build(builder =>
            {
                builder.Configuration.AddInMemoryCollection(RunCommand.Overrides(result));
                builder.AddItemPipeline();
            });
            await host.StartAsync(ct); // runs the migrations
            var targets = await host.Services.GetRequiredService<WriteTargets>().StartAsync(ct);
            var id = await host.Services.GetRequiredService<TagVocabularyStore>().UpsertAsync(result.GetValue(tenant)!, result.GetValue(name)!, labels, ct);
            var tagger = host.Services.GetRequiredService<Tagger>();
            foreach (var target in targets.Targets)
            {
                var embedded = await tagger.EmbedVocabulariesAsync(target.Definition, target.Version, result.GetValue(tenant)!, ct);
                Console.WriteLine($"vocabulary {id}: {labels.Count} labels; {embedded} label prompts embedded in {target.Definition.Name} {target.Definition.ShortVersion} ({target.Version.State.ToString().ToLowerInvariant()})");
            }
            await host.StopAsync(ct);
            return 0;
        })));
        var tags = new Command("tags", "Tag vocabularies");
        tags.Subcommands.Add(load);
        return tags;
    }

    private static async Task<List<string>> ReadLabelsAsync(string path, CancellationToken ct)
    {
        var labels = new List<string>();
        var lineNumber = 0;
        foreach (var line in await File.ReadAllLinesAsync(path, ct))
        {
            lineNumber++;
            var label = line.Trim();
            if (label.Length == 0 || label.StartsWith('#')) continue;
            // Postgres cannot store NUL, and other control characters are never meant as a label.
            if (label.Any(char.IsControl))
                throw new ArgumentException($"{path} line {lineNumber}: the label holds a control character (e.g. NUL); remove it");
            if (!labels.Contains(label, StringComparer.Ordinal)) labels.Add(label);
        }
        return labels.Count > 0 ? labels : throw new ArgumentException($"{path} has no labels");
    }
}
