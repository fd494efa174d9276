using System.CommandLine;
using FreeBind.Consumers.Ingestion;
using FreeBind.Persistence;
using FreeBind.Persistence.Tags;
using Microsoft.Extensions.DependencyInjection;

namespace FreeBind.Consumers.Cli;

/// <summary><c>freebind tags load</c>: a tenant's label vocabulary, embedded at once in the worker's space version.</summary>
internal static class TagsCommand
{
    public static Command Build()
    {
        var tenant = new Option<string>("--tenant") { Description = "Tenant the vocabulary belongs to", Required = true };
        var name = new Option<string>("--vocabulary") { Description = "Vocabulary name (unique per tenant); loading again adds labels", Required = true };
        var file = new Option<FileInfo>("--file") { Description = "Labels, one per line (blank lines and lines starting with # are ignored)", Required = true };
        var load = new Command("load", "Load a label vocabulary and embed its prompts in the configured space") { tenant, name, file };
        load.SetAction((result, ct) => FreeBindCli.Guard(async () =>
        {
            var labels = (await File.ReadAllLinesAsync(result.GetValue(file)!.FullName, ct))
                .Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).Distinct(StringComparer.Ordinal).ToList();
            if (labels.Count == 0) throw new ArgumentException("the label file has no labels");
            using var host = CliHost.Build(builder =>
            {
                builder.AddPersistence();
                builder.AddIngestion(runWorker: false);
            });
            await host.StartAsync(ct); // runs the migrations
            var id = await host.Services.GetRequiredService<TagVocabularyStore>().UpsertAsync(result.GetValue(tenant)!, result.GetValue(name)!, labels, ct);
            var space = await host.Services.GetRequiredService<SpaceBootstrap>().GetAsync(ct);
            var embedded = await host.Services.GetRequiredService<Tagger>().EmbedVocabulariesAsync(space.Definition, space.Version, result.GetValue(tenant)!, ct);
            Console.WriteLine($"vocabulary {id}: {labels.Count} labels; {embedded} label prompts embedded in {space.Definition.Name} {space.Definition.ShortVersion}");
            await host.StopAsync(ct);
            return 0;
        }));
        var tags = new Command("tags", "Tag vocabularies");
        tags.Subcommands.Add(load);
        return tags;
    }
}
