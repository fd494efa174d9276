using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Ingestion;

public static class IngestionExtensions
{
    /// <summary>Registers the Kafka ingestion worker (`freebind run`) and what it needs besides encoding and persistence.</summary>
    public static IHostApplicationBuilder AddIngestion(this IHostApplicationBuilder builder, bool runWorker = true)
    {
        builder.Services.AddOptions<IngestionOptions>().Bind(builder.Configuration.GetSection(IngestionOptions.Section))
            .ValidateDataAnnotations()
            .Validate(o => o.ResumeInFlight < o.MaxInFlight, "Kafka:ResumeInFlight must be below Kafka:MaxInFlight")
            .ValidateOnStart();
        builder.Services.AddSingleton(sp => sp.GetRequiredService<IOptions<IngestionOptions>>().Value);
        builder.Services.AddSingleton<KafkaConnection>();
        // Redirects stay off: a redirect could lead to a host outside Kafka:AllowedHttpHosts.
        builder.Services.AddSingleton(sp => new ContentResolver(sp.GetRequiredService<IngestionOptions>(),
            new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false })));
        builder.Services.AddSingleton<Tagger>();
        builder.Services.AddSingleton<ItemProcessor>();
        builder.Services.AddSingleton<SpaceBootstrap>();
        if (runWorker)
        {
            builder.Services.AddSingleton<IngestionWorker>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<IngestionWorker>());
        }
        return builder;
    }
}
