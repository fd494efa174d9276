using FreeBind.Consumers.Demo;
using FreeBind.Consumers.Reembedding;
using FreeBind.Persistence;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FreeBind.Consumers.Hosting;

public static class DemoHosting
{
    /// <summary>
    /// <c>freebind demo</c>: the ingestion worker and every re-embedding role in one process, on
    /// embedded defaults — librdkafka's in-process mock cluster, a group of its own, the sample folder
    /// as the one allowed file root, every label kept as a tag (the demo shows the scores), the
    /// re-embedding saga and its workers on MassTransit's in-memory transport, and the demo's own
    /// database next to the configured one (<see cref="DemoDatabase"/>). These override the settings
    /// files and the environment.
    /// </summary>
    /// <param name="builder">The host builder.</param>
    /// <param name="mediaFolder">The folder the demo's <c>file://</c> events point into.</param>
    public static IHostApplicationBuilder AddDemo(this IHostApplicationBuilder builder, string mediaFolder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var defaults = new Dictionary<string, string?>
        {
            ["Kafka:Embedded"] = "true",
            ["Kafka:GroupId"] = "freebind-demo-" + Guid.NewGuid().ToString("N")[..6],
            ["Kafka:Consumer:session.timeout.ms"] = "6000",
            ["Content:AllowedFileRoots:0"] = mediaFolder,
            ["Tagging:TopK"] = "3",
            ["Tagging:Threshold"] = "-1",
            ["Messaging:Transport"] = nameof(MessagingTransport.InMemory),
            // The demo follows the run itself (and starts it by publishing the version).
            ["Reembedding:StartOnPublish"] = "true",
            // MassTransit's own records of a failed step carry stack traces; the demo reports the run's failure in one line.
            ["Logging:LogLevel:MassTransit"] = Environment.GetEnvironmentVariable("FREEBIND_TRACE") == "1" ? "Warning" : "Critical",
        };
        builder.Configuration.AddInMemoryCollection(defaults);
        builder.AddIngestionWorker();
        builder.Services.PostConfigure<PersistenceOptions>(o => o.ConnectionString = DemoDatabase.For(o.ConnectionString));
        return builder.AddReembedding(ReembeddingRoles.SagaHost | ReembeddingRoles.Worker);
    }
}
