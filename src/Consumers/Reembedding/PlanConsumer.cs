using System.Globalization;
using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Encoding;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Sagas;
using FreeBind.Persistence.Spaces;
using MassTransit;

namespace FreeBind.Consumers.Reembedding;

/// <summary>Answers <see cref="PlanReembedding"/> with the <see cref="ReembeddingPlanner"/>'s plan.</summary>
public sealed class PlanConsumer(RunVersions versions, ReembeddingPlanner planner, RunStepLocks locks, SagaStore<ReembeddingRun> runs) : IConsumer<PlanReembedding>
{
    /// <inheritdoc />
    public async Task Consume(ConsumeContext<PlanReembedding> context)
    {
        var m = context.Message;
        // A repeat (the watchdog nudged a plan that is merely slow, or one the saga has left) does nothing.
        await using var held = await locks.TryAcquireAsync(m.RunId, "plan", context.CancellationToken);
        if (held is null || (await runs.LoadAsync(m.RunId, context.CancellationToken))?.CurrentState != "Planning")
            return;
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
/// was not kept and has no URI are counted as not retrievable. Counted in Postgres
/// (<see cref="BackfillPlanner"/>): no item is read into this process.
/// </summary>
public sealed class ReembeddingPlanner(SpaceCatalog catalog, BackfillPlanner counts)
{
    /// <summary>Plans rebuilding every live item into <paramref name="version"/>.</summary>
    /// <param name="runId">The run (echoed in the answer).</param>
    /// <param name="version">The registered target version.</param>
    /// <param name="definition">Its definition (atoms it needs per modality); a fusion-only load is enough.</param>
    /// <param name="ct">Cancels the counts.</param>
    public async Task<ReembeddingPlanned> PlanAsync(Guid runId, SpaceVersion version, SpaceDefinition definition, CancellationToken ct)
    {
        var active = await catalog.GetActiveAsync(version.Space, ct);
        var changes = active is null || active.Id == version.Id
            ? ["the space has no other active version: every item is built from its stored atoms or content"]
            : Diff(SpaceManifest.Parse(await catalog.GetManifestAsync(active.Id, ct) ?? "{}", $"space version v{active.Id}"), definition.Manifest);

        var needs = definition.Plans.Keys
            .Select(m => new AtomNeed(m.ToName(), [.. Embedder.AtomsFor(definition, m).Select(k => new Persistence.Reembedding.AtomKey(k.Expert, k.ModelDigest))]))
            .ToList();
        var plans = await counts.PlanAsync(needs, ct);
        var reencode = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (atom, n) in plans.SelectMany(p => p.EncodesByAtom))
            if (n > 0) reencode[atom.Expert] = reencode.GetValueOrDefault(atom.Expert) + n;
        var gone = plans.Sum(p => p.NotRetrievable);
        var unretrievable = new Dictionary<string, long>(StringComparer.Ordinal);
        if (gone > 0) unretrievable["content-not-kept"] = gone;
        return new ReembeddingPlanned(runId, active?.Id == version.Id ? null : active?.Digest,
            plans.Sum(p => p.Items), plans.Sum(p => p.RefuseOnly), reencode, unretrievable, changes);
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
