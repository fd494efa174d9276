using System.Diagnostics;
using Confluent.Kafka;
using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Pipeline.Content;
using FreeBind.Consumers.Spaces;
using Microsoft.Extensions.Options;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Pgvector;

namespace FreeBind.Benchmarks.Ingestion;

/// <summary>Timed messages, seconds, and mean milliseconds per message in each stage.</summary>
internal sealed record NaiveResult(int Events, double Seconds, double ConsumeMs, double EmbedMs, double WriteMs, double CommitMs);

/// <summary>
/// (b) The naive consumer: one message at a time — consume, parse (<see cref="MediaEventParser.Parse"/>),
/// embed with the same <see cref="Embedder"/> (a single item, nothing to batch with), write the same
/// rows as the worker (media, embedding, atoms: one round trip of INSERT … ON CONFLICT statements,
/// committed), then commit the Kafka offset synchronously. No cache, no tags, no output topic.
/// </summary>
internal static class NaiveConsumer
{
    public static async Task<NaiveResult> RunAsync(BenchContext ctx, int warmup, int events, double budgetSeconds)
    {
        await using var db = await BenchDatabase.CreateAsync(ctx.Postgres, migrate: false);
        var topics = ctx.NewTopics();
        var settings = ctx.Settings(db.ConnectionString, topics);
        // It only ever has one item in flight: waiting for company would be pure loss.
        settings["Onnx:MaxWaitMs"] = "0";
        using var host = BenchHost.Build(settings, runWorker: false, new WriteStats());
        await host.StartAsync(); // applies the migrations
        var space = (await host.Services.GetRequiredService<WriteTargets>().StartAsync(CancellationToken.None)).Active!;
        var embedder = host.Services.GetRequiredService<Embedder>();
        var limits = host.Services.GetRequiredService<IOptions<ContentOptions>>().Value.Limits;
        var dataSource = host.Services.GetRequiredService<NpgsqlDataSource>();

        var all = ctx.Texts(events, warmup).Select((t, i) => (Key: $"w-{i:D6}", Text: t))
            .Concat(ctx.Texts(0, events).Select((t, i) => (Key: $"t-{i:D6}", Text: t))).ToList();
        await ctx.ProduceAsync(topics.Topic, all.Select(m => (m.Key, BenchContext.TextEvent(m.Key, m.Text))));

        using var consumer = new ConsumerBuilder<string?, byte[]>(new ConsumerConfig
        {
            BootstrapServers = ctx.Cluster.BootstrapServers,
            GroupId = topics.Group,
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
        }).Build();
        consumer.Subscribe(topics.Topic);
        var sql = Sql(space.Version.TableName);
        var digests = new Dictionary<string, string>(StringComparer.Ordinal);
        int done = 0, timed = 0;
        Stopwatch? watch = null;
        // Milliseconds per stage over the timed messages: consume, parse + embed, Postgres, offset commit.
        double consumeMs = 0, embedMs = 0, writeMs = 0, commitMs = 0;
        var t = Stopwatch.GetTimestamp();
        double Lap()
        {
            var now = Stopwatch.GetTimestamp();
            var ms = Stopwatch.GetElapsedTime(t, now).TotalMilliseconds;
            t = now;
            return watch is null ? 0 : ms;
        }
        while (done < all.Count && (watch is null || watch.Elapsed.TotalSeconds < budgetSeconds))
        {
            Lap();
            var result = consumer.Consume(TimeSpan.FromSeconds(30)) ?? throw new TimeoutException("naive consumer: no message for 30 s");
            consumeMs += Lap();
            var evt = MediaEventParser.Parse(result.Message.Value, result.Message.Key, limits);
            var text = ((MediaSource.Text)evt.Source!).Value;
            var sha = MediaEventParser.Sha256Hex(System.Text.Encoding.UTF8.GetBytes(text));
            var embedding = await embedder.EmbedAsync(space.Definition, MediaInput.FromText(text));
            embedMs += Lap();

            await using (var batch = dataSource.CreateBatch())
            {
                batch.BatchCommands.Add(Command(sql.Media, evt.Id, evt.Tenant, "text", "text", sha, evt.MetadataJson));
                batch.BatchCommands.Add(Command(sql.Embedding, evt.Id, new Vector(embedding.Vector)));
                foreach (var (expert, atom) in embedding.Atoms)
                {
                    var path = space.Definition.ResolvePath(space.Definition.EncoderOf(expert, Modality.Text).Model);
                    if (!digests.TryGetValue(path, out var digest)) digests[path] = digest = SpaceLoader.FileDigest(path);
                    batch.BatchCommands.Add(Command(sql.Atom, evt.Id, expert, digest, new Vector(atom)));
                }
                await batch.ExecuteNonQueryAsync(); // one implicit transaction: committed when it returns
            }
            writeMs += Lap();
            consumer.Commit(result);
            commitMs += Lap();
            done++;
            if (watch is not null) timed++;
            if (done == warmup) watch = Stopwatch.StartNew();
        }
        var seconds = watch?.Elapsed.TotalSeconds ?? throw new InvalidOperationException("naive consumer: warm-up did not finish");
        consumer.Close();
        await host.StopAsync();
        var rows = await db.ScalarAsync<long>($"SELECT count(*) FROM \"{space.Version.TableName}\"");
        if (rows != done) throw new InvalidOperationException($"naive consumer: {rows} rows, {done} messages handled");
        return new NaiveResult(timed, seconds, consumeMs / timed, embedMs / timed, writeMs / timed, commitMs / timed);
    }

    private static (string Media, string Embedding, string Atom) Sql(string table) => (
        """
        INSERT INTO media AS t (id, tenant, modality, source, sha256, metadata) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
        ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, modality = excluded.modality, source = excluded.source,
            sha256 = excluded.sha256, metadata = excluded.metadata, updated_at = now()
        """,
        $"""
        INSERT INTO "{table}" (media_id, embedding) VALUES ($1, $2)
        ON CONFLICT (media_id) DO UPDATE SET embedding = excluded.embedding, updated_at = now()
        """,
        """
        INSERT INTO atoms (media_id, expert, model_digest, embedding) VALUES ($1, $2, $3, $4)
        ON CONFLICT (media_id, expert, model_digest) DO UPDATE SET embedding = excluded.embedding
        """);

    private static NpgsqlBatchCommand Command(string sql, params object[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var v in values) command.Parameters.Add(new NpgsqlParameter { Value = v });
        return command;
    }
}
