using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using FreeBind.Encoding;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Spaces;
using Microsoft.Extensions.DependencyInjection;

namespace FreeBind.Consumers.Cli;

/// <summary><c>freebind spaces list|validate|show</c>.</summary>
internal static class SpacesCommand
{
    public static Command Build()
    {
        var spaces = new Command("spaces", "List, validate and inspect space manifests");

        var list = new Command("list", "List the manifests in the spaces folder");
        list.SetAction(_ =>
        {
            using var host = CliHost.Build();
            var catalog = host.Services.GetRequiredService<ManifestCatalog>();
            foreach (var name in catalog.Names()) Console.WriteLine(name);
            return 0;
        });

        var all = new Option<bool>("--all") { Description = "Validate every manifest in the spaces folder" };
        var validate = new Command("validate", "Check a manifest against its files: experts, modalities, dimension chain, projector shapes, encoder widths (run once when a file leaves it open), external weights, factors")
        {
            FreeBindCli.Space, FreeBindCli.Models, FreeBindCli.Preset, FreeBindCli.Factor, all,
        };
        validate.SetAction(result => FreeBindCli.Guard(() =>
        {
            using var host = CliHost.Build();
            var catalog = host.Services.GetRequiredService<ManifestCatalog>();
            var options = new SpaceLoadOptions { Factors = FreeBindCli.Factors(result), Probe = host.Services.GetRequiredService<SessionFactory>() };
            var names = result.GetValue(all) ? catalog.Names() : [result.GetValue(FreeBindCli.Space) ?? catalog.Options.Default];
            var failed = 0;
            foreach (var name in names)
            {
                try
                {
                    var space = catalog.Load(name, result.GetValue(FreeBindCli.Models), options);
                    Console.WriteLine($"ok    {space.Name}  {space.Version}");
                }
                catch (SpaceValidationException e)
                {
                    failed++;
                    Console.WriteLine($"FAIL  {name}");
                    foreach (var error in e.Errors) Console.WriteLine("      - " + error);
                }
                catch (SpaceChoiceException e) when (result.GetValue(all) && e.Errors.All(c => c.Part == SpaceChoice.Preset))
                {
                    // --all with a preset only some spaces have: the others are not at fault.
                    Console.WriteLine($"skip  {name}  ({e.Message})");
                }
            }
            return Task.FromResult(failed == 0 ? 0 : 1);
        }));

        var json = new Option<bool>("--json") { Description = "Print the version as JSON: name, version, dimension, effective manifest, every file's SHA-256 (what `fuse --digests` reads)" };
        var show = new Command("show", "Print a space: version, experts, bonds with effective factors, per-modality plan, files")
        {
            FreeBindCli.Space, FreeBindCli.Models, FreeBindCli.Preset, FreeBindCli.Factor, json,
        };
        show.SetAction(result => FreeBindCli.Guard(() =>
        {
            using var host = CliHost.Build();
            var catalog = host.Services.GetRequiredService<ManifestCatalog>();
            var space = catalog.Load(result.GetValue(FreeBindCli.Space), result.GetValue(FreeBindCli.Models), FreeBindCli.Factors(result));
            // What naming the version cost: a file is hashed only when it changed since it was last hashed.
            var digests = catalog.Digests;
            Console.Error.WriteLine($"digests: {digests.FilesHashed} files hashed ({digests.BytesHashed.ToString("N0", CultureInfo.InvariantCulture)} bytes read), " +
                $"{digests.FilesReused} unchanged since hashed{(digests.Directory is { } dir ? $" (cache {dir})" : " (no digest cache: Spaces:DigestCache=off)")}" +
                (digests.WriteError is { } w ? $"; {w}" : ""));
            if (result.GetValue(json)) Console.WriteLine(space.ToJson().ToJsonString(Indented));
            else Print(space);
            return Task.FromResult(0);
        }));

        spaces.Subcommands.Add(list);
        spaces.Subcommands.Add(validate);
        spaces.Subcommands.Add(show);
        SpacesPublishCommand.AddTo(spaces);
        return spaces;
    }

    private static void Print(SpaceDefinition space)
    {
        var m = space.Manifest;
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"space      {m.Name}");
        if (m.Description is not null) Console.WriteLine($"           {m.Description}");
        Console.WriteLine($"version    {space.Version}");
        Console.WriteLine($"dimension  {m.Dimension}");
        Console.WriteLine($"models     {space.ModelRoot}");
        Console.WriteLine("experts");
        foreach (var (name, e) in m.Experts)
            Console.WriteLine($"  {name,-20} {e.Dimension,5}-d  " + string.Join("  ", e.Modalities.Select(kv => $"{kv.Key}:{kv.Value.Profile}{(kv.Value.Clips > 1 ? $"×{kv.Value.Clips}" : "")}")));
        Console.WriteLine("projector sets");
        foreach (var (name, s) in m.ProjectorSets)
            Console.WriteLine($"  {name,-28} {s.Source} {s.InputDimension}→{s.OutputDimension}, {s.Files.Count} projectors");
        Console.WriteLine("bonds (in order)");
        foreach (var b in m.Bonds)
            Console.WriteLine($"  {b.Id,-10} {b.Kind,-12} {(b.Expert is null ? "" : "into " + b.Expert + "  ")}[{string.Join(" ∥ ", b.Projectors)}]  factors " +
                              string.Join(", ", b.Factors.Select(kv => $"{kv.Key}={kv.Value.ToString(inv)}")));
        if (m.Presets.Count > 0)
            Console.WriteLine("presets    " + string.Join("; ", m.Presets.Select(p => p.Key + ": " +
                string.Join(", ", p.Value.SelectMany(b => b.Value.Select(f => $"{b.Key}.{f.Key}={f.Value.ToString(inv)}"))))));
        Console.WriteLine("per modality");
        foreach (var plan in space.Plans.Values)
        {
            var steps = plan.Steps.Select(s => s.Blend switch
            {
                BlendKind.None => $"{s.BondId}: M[{Sets(s)}](v)",
                BlendKind.ExpertAtom => $"{s.BondId}: n({s.Factor.ToString(inv)}·M[{Sets(s)}](v) + {(1 - s.Factor).ToString(inv)}·n({s.BlendExpert}))",
                _ => $"{s.BondId}: n({s.Factor.ToString(inv)}·M[{Sets(s)}] + {(1 - s.Factor).ToString(inv)}·v)",
            });
            Console.WriteLine($"  {plan.Modality.ToName(),-6} v = n({plan.BaseExpert})" + string.Concat(steps.Select(s => " → " + s)));
        }
        Console.WriteLine("files");
        foreach (var (file, digest) in space.Files.Digests)
            Console.WriteLine($"  {digest[..12]}  {file}");
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static string Sets(BondStep step) => string.Join(" ∥ ", step.Mixture.Select(i => i.AtomExpert is null ? i.ProjectorSet : $"{i.ProjectorSet}({i.AtomExpert})"));
}
