using FreeBind.Consumers.Reembedding;
using FreeBind.Persistence.Sagas;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Hosting;

/// <summary>What a re-embedding process does; combine them (the embedded demo is all of them).</summary>
[Flags]
public enum ReembeddingRoles
{
    /// <summary>Only sends operator commands (the <c>reembed</c> CLI).</summary>
    Client = 0,

    /// <summary>Runs the state machine and the watchdog.</summary>
    SagaHost = 1,

    /// <summary>
    /// Does the work: plans, cuts and writes backfill batches (competing consumers: run as many as
    /// wanted), verifies, cuts over, drops, rolls back. Needs <c>AddItemPipeline</c> (content policy, tags).
    /// </summary>
    Worker = 2,
}

/// <summary>The re-embedding processes: MassTransit on the configured transport, the saga on its Postgres store.</summary>
public static class ReembeddingHosting
{
    /// <summary>The saga's table (migration 0004).</summary>
    public const string RunsTable = "reembedding_runs";

    /// <summary>
    /// Adds MassTransit on the transport of <c>Messaging:Transport</c> and, for
    /// <see cref="ReembeddingRoles.SagaHost"/>, the re-embedding state machine stored in Postgres.
    /// Needs <c>AddPersistence</c>. Options: sections <c>Messaging</c> and <c>Reembedding</c>, validated at start.
    /// </summary>
    /// <param name="builder">The host builder.</param>
    /// <param name="roles">What this process does.</param>
    /// <param name="configure">More registrations (the tests add their consumers here).</param>
    public static IHostApplicationBuilder AddReembedding(this IHostApplicationBuilder builder, ReembeddingRoles roles,
        Action<IBusRegistrationConfigurator>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<MessagingOptions>().BindConfiguration(MessagingOptions.Section)
            .PostConfigure(o =>
            {
                if (string.IsNullOrWhiteSpace(o.RabbitMq))
                    o.RabbitMq = Environment.GetEnvironmentVariable("FREEBIND_RABBITMQ") ?? "";
            })
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddOptions<ReembeddingOptions>().BindConfiguration(ReembeddingOptions.Section)
            .ValidateDataAnnotations()
            .Validate(o => o.WatchdogInterval > TimeSpan.Zero, "Reembedding:WatchdogInterval must be positive")
            .ValidateOnStart();
        builder.Services.AddSingleton<RunVersions>();
        builder.Services.AddSingleton<ItemRebuilder>();
        builder.Services.AddSingleton<ReembeddingPlanner>();
        builder.Services.AddSingleton(sp => new SagaStore<ReembeddingRun>(sp.GetRequiredService<Npgsql.NpgsqlDataSource>(), RunsTable));

        builder.Services.AddMassTransit(x =>
        {
            if (roles.HasFlag(ReembeddingRoles.SagaHost))
                x.AddSagaStateMachine<ReembeddingStateMachine, ReembeddingRun, ReembeddingStateDefinition>()
                    .PostgresRepository(RunsTable);
            if (roles.HasFlag(ReembeddingRoles.Worker))
            {
                x.AddConsumer<PlanConsumer>(WorkerStep);
                x.AddConsumer<DispatchBackfillConsumer>(WorkerStep);
                x.AddConsumer<BackfillBatchConsumer>(WorkerStep);
                x.AddConsumer<VerifyConsumer>(WorkerStep);
                x.AddConsumer<VersionStepConsumers>(WorkerStep);
            }
            configure?.Invoke(x);
            var transport = builder.Configuration.GetSection(MessagingOptions.Section).GetValue(nameof(MessagingOptions.Transport), MessagingTransport.RabbitMq);
            if (transport == MessagingTransport.InMemory)
                x.UsingInMemory((context, cfg) => cfg.ConfigureEndpoints(context));
            else
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(new Uri(context.GetRequiredService<IOptions<MessagingOptions>>().Value.RabbitMq));
                    cfg.ConfigureEndpoints(context);
                });
        });
        // Start returns once every queue and binding exists, so nothing published right after is
        // lost to an exchange nobody is bound to yet, and an unreachable broker fails the start.
        builder.Services.Configure<MassTransitHostOptions>(o =>
        {
            o.WaitUntilStarted = true;
            o.StartTimeout = TimeSpan.FromMinutes(1);
            o.StopTimeout = TimeSpan.FromSeconds(30);
        });
        if (roles.HasFlag(ReembeddingRoles.SagaHost))
            builder.Services.AddHostedService<ReembeddingWatchdog>();
        return builder;
    }

    // A worker step that fails (Postgres restarting, a broker hiccup) is retried in place for about a
    // minute; its answers leave only when it succeeds, so a retry publishes nothing twice. A step that
    // still fails faults, and the saga fails the run with the reason instead of waiting for an answer.
    private static void WorkerStep<T>(IRegistrationContext context, IConsumerConfigurator<T> consumer)
        where T : class, IConsumer
    {
        consumer.UseMessageRetry(r =>
        {
            r.Ignore<ArgumentException>(); // bad data or a bug: retrying cannot help
            r.Exponential(12, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(500));
        });
        consumer.UseInMemoryOutbox(context);
    }
}
