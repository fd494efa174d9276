using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Persistence.Spaces;
using MassTransit;

namespace FreeBind.Consumers.Reembedding;

/// <summary>
/// The version transactions of a run (Persistence's lifecycle: one transaction each, repeats are
/// no-ops): cut-over, drop of a cancelled or failed run's building version, rollback.
/// </summary>
public sealed class VersionStepConsumers(SpaceCatalog catalog, SpaceVersionLifecycle lifecycle) :
    IConsumer<ActivateVersion>, IConsumer<DropVersion>, IConsumer<RestoreVersion>
{
    /// <inheritdoc />
    public async Task Consume(ConsumeContext<ActivateVersion> context)
    {
        var m = context.Message;
        var version = await catalog.GetAsync(m.Space, m.TargetDigest, context.CancellationToken);
        if (version is null)
        {
            await context.Publish(new ReembeddingStepFailed(m.RunId, "cut-over", $"version {m.TargetDigest} of '{m.Space}' is not registered"));
            return;
        }
        try
        {
            await lifecycle.CutOverAsync(version, context.CancellationToken);
        }
        catch (SpaceVersionException e)
        {
            await context.Publish(new ReembeddingStepFailed(m.RunId, "cut-over", e.Message));
            return;
        }
        await context.Publish(new VersionActivated(m.RunId));
    }

    /// <inheritdoc />
    public async Task Consume(ConsumeContext<DropVersion> context)
    {
        var m = context.Message;
        if (await catalog.GetAsync(m.Space, m.TargetDigest, context.CancellationToken) is { HasTable: true } version
            && version.State is SpaceVersionState.Building or SpaceVersionState.Ready)
            await lifecycle.CancelAsync(version, $"re-embedding run {m.RunId} ended without a cut-over", context.CancellationToken);
        await context.Publish(new VersionDropped(m.RunId));
    }

    /// <inheritdoc />
    public async Task Consume(ConsumeContext<RestoreVersion> context)
    {
        var m = context.Message;
        var version = await catalog.GetAsync(m.Space, m.TargetDigest, context.CancellationToken);
        try
        {
            await lifecycle.RollbackAsync(m.Space, version, context.CancellationToken);
        }
        catch (SpaceVersionException e)
        {
            await context.Publish(new ReembeddingStepFailed(m.RunId, "rollback", e.Message));
            return;
        }
        await context.Publish(new VersionRestored(m.RunId));
    }
}
