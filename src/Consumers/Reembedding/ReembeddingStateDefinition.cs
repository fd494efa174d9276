using FreeBind.Consumers.Contracts.Reembedding;
using MassTransit;

namespace FreeBind.Consumers.Reembedding;

/// <summary>The saga's receive endpoint: retries and an outbox, so an answer is recorded once and commands leave only after the state is saved.</summary>
public sealed class ReembeddingStateDefinition : SagaDefinition<ReembeddingRun>
{
    /// <summary>Names the endpoint (one queue shared by every saga host).</summary>
    public ReembeddingStateDefinition() => EndpointName = "freebind-reembedding";

    /// <inheritdoc />
    protected override void ConfigureSaga(IReceiveEndpointConfigurator endpointConfigurator, ISagaConfigurator<ReembeddingRun> sagaConfigurator,
        IRegistrationContext context)
    {
        ArgumentNullException.ThrowIfNull(endpointConfigurator);
        // Optimistic concurrency: two saga hosts recording answers of the same run at once make one
        // of them retry on the new version. The same retries outlast a Postgres restart (~2 min).
        endpointConfigurator.UseMessageRetry(r => r.Exponential(30, TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(50)));
        // Within one host, the messages of one run are handled one at a time (runs in parallel), so
        // the batch answers of a busy run do not collide with each other and retry.
        var partitioner = endpointConfigurator.CreatePartitioner(Environment.ProcessorCount * 4);
        endpointConfigurator.UsePartitioner<StartReembedding>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<SpaceVersionPublished>(partitioner, c => RunIds.For(c.Message.Space, c.Message.Digest));
        endpointConfigurator.UsePartitioner<PauseReembedding>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<ResumeReembedding>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<CancelReembedding>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<CutOverReembedding>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<RollbackReembedding>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<ReembeddingTick>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<ReembeddingPlanned>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<BackfillDispatched>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<BackfillBatchCompleted>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<ReembeddingVerified>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<VersionActivated>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<VersionDropped>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<VersionRestored>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<ReembeddingStepFailed>(partitioner, c => c.Message.RunId);
        endpointConfigurator.UsePartitioner<Fault<PlanReembedding>>(partitioner, c => c.Message.Message.RunId);
        endpointConfigurator.UsePartitioner<Fault<DispatchBackfill>>(partitioner, c => c.Message.Message.RunId);
        endpointConfigurator.UsePartitioner<Fault<BackfillBatch>>(partitioner, c => c.Message.Message.RunId);
        endpointConfigurator.UsePartitioner<Fault<VerifyReembedding>>(partitioner, c => c.Message.Message.RunId);
        endpointConfigurator.UsePartitioner<Fault<ActivateVersion>>(partitioner, c => c.Message.Message.RunId);
        endpointConfigurator.UsePartitioner<Fault<RestoreVersion>>(partitioner, c => c.Message.Message.RunId);
        // Commands published while an event is handled leave only once the new state is stored.
        endpointConfigurator.UseInMemoryOutbox(context);
    }
}
