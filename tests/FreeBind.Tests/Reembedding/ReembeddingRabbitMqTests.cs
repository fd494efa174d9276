using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Reembedding;
using FreeBind.Persistence;
using FreeBind.Persistence.Sagas;
using FreeBind.Tests.Persistence;
using FreeBind.Tests.Services;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FreeBind.Tests.Reembedding;

/// <summary>A RabbitMQ virtual host of the test class's own, so parallel classes never receive each other's messages.</summary>
public sealed class RabbitMqVirtualHost : IAsyncLifetime
{
    public string Name { get; } = "freebind-test-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>$FREEBIND_RABBITMQ with this virtual host.</summary>
    public string Uri => new UriBuilder(ServiceEnvironment.RabbitMq) { Path = "/" + Name }.Uri.ToString();

    public Task InitializeAsync()
    {
        _ = ServiceEnvironment.RabbitMq; // fails loudly, with the fix, when the broker is not configured
        return ServiceEnvironment.RunScriptAsync("add-rabbitmq-vhost", Name);
    }

    public Task DisposeAsync() => ServiceEnvironment.RunScriptAsync("delete-rabbitmq-vhost", Name);
}

/// <summary>
/// The saga as production runs it (AddReembedding, RabbitMQ, the Postgres store) with two saga hosts
/// and a worker host competing for the queues; the workers (<see cref="ScriptedWorkers"/>) answer every command twice.
/// </summary>
[Collection(RabbitMqCollection.Name)]
public sealed class ReembeddingRabbitMqTests(MigratedDatabase database, RabbitMqVirtualHost broker)
    : IClassFixture<MigratedDatabase>, IClassFixture<RabbitMqVirtualHost>
{
    private const string Digest = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    private IHost Build(ReembeddingRoles roles, ScriptedArchive? workers)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders().AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Messaging:Transport"] = "RabbitMq",
            ["Messaging:RabbitMq"] = broker.Uri,
            ["Reembedding:BatchSize"] = "5",
            ["Reembedding:WindowBatches"] = "8",
            ["Reembedding:WatchdogInterval"] = "00:00:02",
            ["Persistence:ConnectionString"] = database.Db.ConnectionString,
            ["Cache:Enabled"] = "false",
        });
        builder.AddPersistence();
        if (workers is not null) builder.Services.AddSingleton(workers);
        builder.AddReembedding(roles, x =>
        {
            if (workers is not null) x.AddConsumer<ScriptedWorkers>();
        });
        return builder.Build();
    }

    private SagaStore<ReembeddingRun> Runs => new(database.Db.DataSource, ReembeddingHosting.RunsTable);

    private async Task<ReembeddingRun> WaitForAsync(Guid id, string state, int seconds = 120)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        ReembeddingRun? run = null;
        while (DateTime.UtcNow < deadline)
        {
            run = await Runs.LoadAsync(id);
            if (run?.CurrentState == state) return run;
            await Task.Delay(100);
        }
        throw new Xunit.Sdk.XunitException($"run {id} did not reach {state} in {seconds} s; it is {run?.CurrentState ?? "missing"} (done {run?.Done}, batches {run?.CompletedBatches.Count}/{run?.NextSequence})");
    }

    [Fact]
    public async Task Two_saga_hosts_share_a_run_and_a_broker_restart_mid_backfill_loses_and_doubles_nothing()
    {
        var archive = ScriptedArchive.WithItems(400);
        archive.BatchDelay = TimeSpan.FromMilliseconds(30);
        using var sagaA = Build(ReembeddingRoles.SagaHost, null);
        using var sagaB = Build(ReembeddingRoles.SagaHost, null);
        using var workers = Build(ReembeddingRoles.Client, archive);
        await Task.WhenAll(sagaA.StartAsync(), sagaB.StartAsync(), workers.StartAsync());

        var id = RunIds.For("rabbit", Digest);
        await sagaA.Services.GetRequiredService<IBus>().Publish(new StartReembedding(id, "rabbit", Digest, AutoCutover: true, "test"));
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await Runs.LoadAsync(id))?.CompletedBatches.Count is not > 10 && DateTime.UtcNow < deadline) await Task.Delay(50);
        var before = await Runs.LoadAsync(id);
        Assert.Equal("Backfilling", before?.CurrentState);

        await ServiceEnvironment.RunScriptAsync("stop-rabbitmq");
        await ServiceEnvironment.RunScriptAsync("start-rabbitmq");

        var active = await WaitForAsync(id, "Active", 180);
        Assert.Equal(400, active.Done);
        Assert.Equal(80, active.NextSequence);
        Assert.Equal(Enumerable.Range(0, 80).Select(i => (long)i), active.CompletedBatches);
        Assert.Equal(archive.Ids, archive.Written.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([Digest], archive.Activated.Distinct());
        Assert.Null(active.ExclusiveKey);

        await Task.WhenAll(sagaA.StopAsync(), sagaB.StopAsync(), workers.StopAsync());
    }
}

/// <summary>Test classes that must not run while the broker is restarted by another one.</summary>
[CollectionDefinition(Name)]
public sealed class RabbitMqCollection
{
    public const string Name = "RabbitMQ restarts";
}
