using System.Globalization;
using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Encoding;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Spaces;
using MassTransit;

namespace FreeBind.Consumers.Reembedding;

/// <summary>Answers <see cref="PlanReembedding"/> with the <see cref="ReembeddingPlanner"/>'s plan.</summary>
public sealed class PlanConsumer(RunVersions versions, ReembeddingPlanner planner) : IConsumer<PlanReembedding>
{
    /// <inheritdoc />
    public async Task Consume(ConsumeContext<PlanReembedding> context)
    {
        var m = context.Message;
        RunVersion target;
        try
        {
            target = await versions.LoadAsync(m.Space, m.TargetDigest, context.CancellationToken);
        }
        catch (RunStepException e)
        {
            await context.Publish(new ReembeddingStepFailed(m.RunId, "plan", e.Message));
            return;
        }
        await context.Publish(await planner.PlanAsync(m.RunId, target.Version, target.Definition, context.CancellationToken));
    }
}

/// <summary>
/// A run's plan: what changed against the active version, and per item the cheapest path — a
/// re-fusion when every atom the new version needs is stored (same expert model digest), else a
/// re-encode of the experts whose atoms are missing; items that need an encoder but whose content
/// was not kept and has no URI are counted as not retrievable.
/// </summary>
public sealed class ReembeddingPlanner(SpaceCatalog catalog, BackfillReader reader, EmbeddingStore store)
{
    private const int Page = 2048;

    /// <summary>Plans rebuilding every live item into <paramref name="version"/>.</summary>
    /// <param name="runId">The run (echoed in the answer).</param>
    /// <param name="version">The registered target version.</param>
    /// <param name="definition">Its definition (atoms it needs per modality); a fusion-only load is enough.</param>
    /// <param name="ct">Cancels the scan.</param>
    public async Task<ReembeddingPlanned> PlanAsync(Guid runId, SpaceVersion version, SpaceDefinition definition, CancellationToken ct)
    {
        var target = new RunVersion(version, definition);
        var active = await catalog.GetActiveAsync(version.Space, ct);
        var changes = active is null || active.Id == target.Version.Id
            ? ["the space has no other active version: every item is built from its stored atoms or content"]
            : Diff(SpaceManifest.Parse(await catalog.GetManifestAsync(active.Id, ct) ?? "{}", $"space version v{active.Id}"), target.Definition.Manifest);

        var needed = target.Definition.Plans.ToDictionary(p => p.Key.ToName(), p => Embedder.AtomsFor(target.Definition, p.Key));
        var keys = needed.Values.SelectMany(k => k).Distinct().Select(k => new Persistence.Reembedding.AtomKey(k.Expert, k.ModelDigest)).ToList();
        long items = 0, refuse = 0;
        var reencode = new Dictionary<string, long>(StringComparer.Ordinal);
        var unretrievable = new Dictionary<string, long>(StringComparer.Ordinal);
        string? after = null;
        while (await reader.NextRangeAsync(needed.Keys, after, Page, ct) is { } range)
        {
            foreach (var item in await reader.ReadAsync(range, needed.Keys, keys, cancellationToken: ct))
            {
                items++;
                var have = item.Atoms.Select(a => (a.Expert, a.ModelDigest)).ToHashSet();
                var missing = needed[item.Modality].Where(k => !have.Contains((k.Expert, k.ModelDigest))).ToList();
                if (missing.Count == 0)
                {
                    refuse++;
                    continue;
                }
                if (!Uri.TryCreate(item.Source, UriKind.Absolute, out _) && await store.GetContentAsync(item.MediaId, ct) is null)
                {
                    unretrievable["content-not-kept"] = unretrievable.GetValueOrDefault("content-not-kept") + 1;
                    continue;
                }
                foreach (var key in missing)
                    reencode[key.Expert] = reencode.GetValueOrDefault(key.Expert) + 1;
            }
            after = range.Last;
        }
        return new ReembeddingPlanned(runId, active?.Id == target.Version.Id ? null : active?.Digest, items, refuse, reencode, unretrievable, changes);
    }

    /// <summary>What changed from <paramref name="from"/> to <paramref name="to"/>: factors, projector files and expert models, one line each.</summary>
    /// <param name="from">The active version's manifest.</param>
    /// <param name="to">The new version's manifest.</param>
    public static List<string> Diff(SpaceManifest from, SpaceManifest to)
    {
        var inv = CultureInfo.InvariantCulture;
        var lines = new List<string>();
        foreach (var bond in to.Bonds)
        {
            var old = from.Bonds.FirstOrDefault(b => b.Id == bond.Id);
            if (old is null)
            {
                lines.Add($"bond {bond.Id}: new");
                continue;
            }
            foreach (var (modality, f) in bond.Factors)
                if (!old.Factors.TryGetValue(modality, out var was) || was != f)
                    lines.Add($"factor {bond.Id}.{modality}: {(old.Factors.ContainsKey(modality) ? was.ToString(inv) : "none")} → {f.ToString(inv)} (re-fusion)");
        }
        foreach (var removed in from.Bonds.Where(b => to.Bonds.All(n => n.Id != b.Id)))
            lines.Add($"bond {removed.Id}: removed");
        foreach (var (name, set) in to.ProjectorSets)
            if (!from.ProjectorSets.TryGetValue(name, out var old) || !old.Files.SequenceEqual(set.Files))
                lines.Add($"projector set {name}: files changed (re-fusion)");
        foreach (var (name, expert) in to.Experts)
            foreach (var (modality, spec) in expert.Modalities)
                if (!from.Experts.TryGetValue(name, out var old) || !old.Modalities.TryGetValue(modality, out var was) || was.Model != spec.Model)
                    lines.Add($"expert {name} {modality}: model {spec.Model} is new (re-encode {modality} items for {name} only)");
        if (lines.Count == 0)
            lines.Add("same manifest; file contents differ (projector weights or expert models): atoms whose model digest is unchanged are reused");
        return lines;
    }
}
