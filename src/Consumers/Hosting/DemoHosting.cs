using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

namespace FreeBind.Consumers.Hosting;

public static class DemoHosting
{
    /// <summary>
    /// <c>freebind demo</c>: the ingestion worker on embedded defaults — librdkafka's in-process mock
    /// cluster, a group of its own, the sample folder as the one allowed file root, every label kept
    /// as a tag (the demo shows the scores). These override the settings files and the environment.
    /// </summary>
    /// <param name="builder">The host builder.</param>
    /// <param name="mediaFolder">The folder the demo's <c>file://</c> events point into.</param>
    public static IHostApplicationBuilder AddDemo(this IHostApplicationBuilder builder, string mediaFolder)
    {
        var defaults = new Dictionary<string, string?>
        {
            ["Kafka:Embedded"] = "true",
            ["Kafka:GroupId"] = "freebind-demo-" + Guid.NewGuid().ToString("N")[..6],
            ["Kafka:Consumer:session.timeout.ms"] = "6000",
            ["Content:AllowedFileRoots:0"] = mediaFolder,
            ["Tagging:TopK"] = "3",
            ["Tagging:Threshold"] = "-1",
        };
        builder.Configuration.AddInMemoryCollection(defaults);
        return builder.AddIngestionWorker();
    }
}
