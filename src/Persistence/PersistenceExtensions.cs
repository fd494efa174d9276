using FreeBind.Persistence.Cache;
using FreeBind.Persistence.Embeddings;
using FreeBind.Persistence.Migrations;
using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Search;
using FreeBind.Persistence.Spaces;
using FreeBind.Persistence.Tags;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using StackExchange.Redis;

namespace FreeBind.Persistence;

/// <summary>Registers the persistence layer: Postgres (pgvector) storage and the Redis embedding cache.</summary>
public static class PersistenceExtensions
{
    /// <summary>
    /// Adds one <see cref="NpgsqlDataSource"/> (with pgvector), the migration runner (run at start
    /// unless <c>Persistence:MigrateOnStart</c> is false), <see cref="SpaceCatalog"/>,
    /// <see cref="SpaceVersionLifecycle"/>, <see cref="SpaceIndexBuilder"/>, <see cref="EmbeddingStore"/>, <see cref="TagVocabularyStore"/> and <see cref="EmbeddingCache"/>.
    /// Options come from the <c>Persistence</c>, <c>SpaceVersions</c> and <c>Cache</c> sections, falling back to
    /// <c>$FREEBIND_PG</c> / <c>$FREEBIND_REDIS</c>, and are validated at start.
    /// </summary>
    /// <param name="builder">The host builder.</param>
    public static IHostApplicationBuilder AddPersistence(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;

        services.AddOptions<PersistenceOptions>()
            .BindConfiguration(PersistenceOptions.Section)
            .PostConfigure(o =>
            {
                if (string.IsNullOrWhiteSpace(o.ConnectionString))
                    o.ConnectionString = Environment.GetEnvironmentVariable("FREEBIND_PG") ?? "";
            })
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<PersistenceOptions>, PersistenceOptionsValidator>();

        services.AddOptions<CacheOptions>()
            .BindConfiguration(CacheOptions.Section)
            .PostConfigure(o =>
            {
                if (string.IsNullOrWhiteSpace(o.Redis))
                    o.Redis = Environment.GetEnvironmentVariable("FREEBIND_REDIS") ?? "";
            })
            .Validate(o => !o.Enabled || !string.IsNullOrWhiteSpace(o.Redis),
                "Cache:Redis is required when the cache is enabled (or set FREEBIND_REDIS, or Cache:Enabled=false)")
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<CacheOptions>, CacheOptionsValidator>();

        services.AddOptions<SpaceVersionOptions>()
            .BindConfiguration(SpaceVersionOptions.Section)
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<SpaceVersionOptions>, SpaceVersionOptionsValidator>();

        services.AddSingleton(sp => CreateDataSource(
            sp.GetRequiredService<IOptions<PersistenceOptions>>().Value.ConnectionString,
            sp.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton<MigrationRunner>();
        services.AddHostedService<MigrateOnStartService>();
        services.AddSingleton<SpaceCatalog>();
        services.AddSingleton<SpaceVersionLifecycle>();
        services.AddSingleton<SpaceIndexBuilder>();
        services.AddSingleton<VectorSearch>();
        services.AddSingleton<VerificationStore>();
        services.AddSingleton<BackfillReader>();
        services.AddSingleton<BackfillWriter>();
        services.AddSingleton<RunFailures>();
        services.AddSingleton<BackfillPlanner>();
        services.AddSingleton<VersionDocuments>();
        services.AddSingleton<RunStepLocks>();
        services.AddSingleton<VersionVerifier>();
        services.AddSingleton<EmbeddingStore>();
        services.AddSingleton<TagVocabularyStore>();

        services.AddSingleton<IConnectionMultiplexer>(sp =>
            RedisConnection.Connect(sp.GetRequiredService<IOptions<CacheOptions>>().Value));
        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<CacheOptions>>();
            var redis = options.Value.Enabled ? sp.GetRequiredService<IConnectionMultiplexer>() : null;
            return new EmbeddingCache(redis, options, sp.GetRequiredService<ILogger<EmbeddingCache>>());
        });
        return builder;
    }

    /// <summary>The one data source of the process: pooled, with pgvector's <c>vector</c> type mapped.</summary>
    /// <param name="connectionString">Npgsql connection string.</param>
    /// <param name="loggerFactory">Logs Npgsql's own events; null for none.</param>
    public static NpgsqlDataSource CreateDataSource(string connectionString, ILoggerFactory? loggerFactory = null)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        builder.UseVector();
        if (loggerFactory is not null)
            builder.UseLoggerFactory(loggerFactory);
        return builder.Build();
    }
}
