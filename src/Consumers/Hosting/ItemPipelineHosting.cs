using FreeBind.Consumers.Ingestion;
using FreeBind.Consumers.Pipeline;
using FreeBind.Consumers.Pipeline.Content;
using FreeBind.Consumers.Pipeline.Tagging;
using FreeBind.Consumers.Resilience;
using FreeBind.Consumers.Spaces;
using FreeBind.Persistence;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace FreeBind.Consumers.Hosting;

public static class ItemPipelineHosting
{
    /// <summary>
    /// The item pipeline without Kafka (content policy, cache, encoders once per item, fusion per
    /// target, tags) and the space's write targets, with persistence: what <c>tags load</c>, a
    /// backfill or a search API need. Encoding must be added first (<c>AddEncoding</c>).
    /// Sections: <c>Ingestion</c>, <c>Content</c>, <c>Tagging</c>, plus those of persistence.
    /// </summary>
    public static IHostApplicationBuilder AddItemPipeline(this IHostApplicationBuilder builder)
    {
        builder.AddPersistence();
        var services = builder.Services;
        services.AddOptions<IngestionOptions>().BindConfiguration(IngestionOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.ResumeInFlight < o.MaxInFlight, "Ingestion:ResumeInFlight must be below Ingestion:MaxInFlight")
            .ValidateOnStart();
        services.AddOptions<ContentOptions>().BindConfiguration(ContentOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.AllowedFileRoots.All(r => Path.IsPathFullyQualified(r)), "Content:AllowedFileRoots must be absolute paths")
            .ValidateOnStart();
        services.AddOptions<TaggingOptions>().BindConfiguration(TaggingOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.Templates.Values.All(t => t.Contains("{label}", StringComparison.Ordinal)), "every Tagging:Templates entry must contain {label}")
            .ValidateOnStart();
        services.TryAddSingleton<IngestionMetrics>();
        services.TryAddSingleton<Retries>();
        // Redirects stay off: a redirect could lead to a host outside Content:AllowedHttpHosts.
        services.TryAddSingleton<HttpMessageHandler>(_ => new SocketsHttpHandler { AllowAutoRedirect = false });
        services.TryAddSingleton<ContentResolver>();
        services.TryAddSingleton<Tagger>();
        services.TryAddSingleton<ItemPipeline>();
        services.TryAddSingleton<WriteTargets>();
        return builder;
    }
}
