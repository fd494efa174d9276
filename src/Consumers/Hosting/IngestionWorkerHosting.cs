using FreeBind.Consumers.Ingestion;
using FreeBind.Consumers.Kafka;
using FreeBind.Consumers.Spaces;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Hosting;

public static class IngestionWorkerHosting
{
    /// <summary>
    /// <c>freebind run</c>: the Kafka ingestion worker (consume loop, batch writer, result
    /// publisher), the watcher of its write targets, and everything <see cref="ItemPipelineHosting.AddItemPipeline"/>
    /// adds. Encoding must be added first. Sections: <c>Kafka</c> (with <c>Client</c>,
    /// <c>Consumer</c>, <c>Producer</c> pass-through) and those of the item pipeline.
    /// </summary>
    public static IHostApplicationBuilder AddIngestionWorker(this IHostApplicationBuilder builder)
    {
        builder.AddItemPipeline();
        var services = builder.Services;
        services.AddOptions<KafkaOptions>().BindConfiguration(KafkaOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IValidateOptions<KafkaOptions>, KafkaSettings.SecretsFromEnvironment>();
        services.AddSingleton<IValidateOptions<KafkaOptions>, KafkaSettings.Buildable>();
        services.AddSingleton<KafkaClients>();
        services.AddSingleton<MessageProcessor>();
        services.AddSingleton<TargetWatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<TargetWatcher>());
        services.AddSingleton<IngestionWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<IngestionWorker>());
        return builder;
    }
}
