using System.Globalization;
using FreeBind.Benchmarks.Ingestion;
using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Reembedding;
using FreeBind.Encoding;
using FreeBind.Encoding.Preprocessing;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence.Spaces;
using FreeBind.Consumers.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Hosting;
using NpgsqlTypes;

namespace FreeBind.Benchmarks.Refusion;

/// <summary>
/// The archive a re-fusion backfill reads, in a fresh database of the benchmark's Postgres: audio
/// items of <c>imagebind++</c> with their stored atoms (ImageBind, CLAP-General, CLAP-Music) under the
/// stand-in encoders' model digests, written before the clock starts. The first <see cref="ContentItems"/>
/// items are real audio (the sample WAVs, one PCM sample changed per item so each has its own digest)
/// with their content kept and their atoms computed by the encoders; the others carry clustered random
/// unit atoms (what a fusion or an index sees of real embeddings: clusters, not uniform noise).
/// Also the process the cases run in: the item pipeline composed as a backfill worker has it.
/// </summary>
internal sealed class RefusionArchive : IAsyncDisposable
{
    public const string Tenant = "bench";
    public static readonly string[] Modalities = ["audio"];

    private int _versions;

    private RefusionArchive(BenchDatabase db, IHost host, SpaceDefinition target, int items, int contentItems)
    {
        Database = db;
        Host = host;
        Target = target;
        Items = items;
        ContentItems = contentItems;
    }

    public BenchDatabase Database { get; }

    /// <summary>Encoding + item pipeline + persistence, as a backfill worker composes them (not started: nothing hosted runs).</summary>
    public IHost Host { get; }

    /// <summary>The version the backfill builds: the same models, other factors (a pure re-fusion).</summary>
    public SpaceDefinition Target { get; }

    public int Items { get; }

    public int ContentItems { get; }

    public T Get<T>() where T : notnull => Host.Services.GetRequiredService<T>();

    public static string Id(int i) => $"item-{i:D8}";

    /// <summary>
    /// Creates the database, the host and the archive. <paramref name="from"/> is the preset the atoms
    /// were embedded under (nothing of it is stored but the atoms, which do not depend on factors),
    /// <paramref name="to"/> the target version's.
    /// </summary>
    public static async Task<RefusionArchive> CreateAsync(string root, string models, string postgres, string? redis, string media,
        string space, string to, int items, int contentItems, Action<string> log)
    {
        var db = await BenchDatabase.CreateAsync(postgres, migrate: true);
        var settings = new Dictionary<string, string?>
        {
            ["Spaces:ManifestDirectory"] = Path.Combine(root, "spaces"),
            ["Spaces:ModelRoot"] = models,
            ["Spaces:Default"] = space,
            ["Onnx:ExecutionProvider"] = "cpu",
            ["Onnx:VerifyProjectors"] = "false",
            ["Persistence:ConnectionString"] = db.ConnectionString,
            ["Cache:Redis"] = redis ?? "127.0.0.1:1",
        };
        var host = BuildHost(settings);
        var target = SpaceLoader.Load(Path.Combine(root, "spaces", space + ".json"), models, FactorSelection.Parse(to, []));
        var archive = new RefusionArchive(db, host, target, items, contentItems);
        await archive.SeedAsync(media, log);
        return archive;
    }

    /// <summary>
    /// Registers a new, empty version table for a case, as <c>spaces publish</c> registers a backfilled
    /// version (no index: built after the load), and loads it as a backfill worker does.
    /// Each case gets its own space name, so every table is new; the digest is the target's.
    /// </summary>
    public async Task<RunVersion> NewVersionAsync(string label)
    {
        var n = Interlocked.Increment(ref _versions);
        var space = $"{Target.Name}/bench-{n:D3}-{label}";
        await Get<SpaceCatalog>().RegisterForBackfillAsync(space, Target.Version, Target.Dimension, Target.Manifest.ToCanonicalJson());
        return await Get<RunVersions>().LoadAsync(space, Target.Version, CancellationToken.None);
    }

    /// <summary>Drops a case's table (the benchmark's clean-up: dozens of 20,000-row tables add up).</summary>
    public Task DropAsync(SpaceVersion version) => Database.ExecuteAsync($"DROP TABLE IF EXISTS \"{version.TableName}\"");

    /// <summary>Every row of a version's table, by media id.</summary>
    public async Task<Dictionary<string, float[]>> VectorsAsync(SpaceVersion version)
    {
        var rows = new Dictionary<string, float[]>(StringComparer.Ordinal);
        await using var cmd = Database.DataSource.CreateCommand($"SELECT media_id, embedding FROM \"{version.TableName}\"");
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            rows[reader.GetString(0)] = reader.GetFieldValue<Pgvector.Vector>(1).ToArray();
        return rows;
    }

    private async Task SeedAsync(string media, Action<string> log)
    {
        var embedder = Get<Embedder>();
        var keys = Embedder.AtomsFor(Target, Modality.Audio);
        var dims = keys.Select(k => Target.Manifest.Experts[k.Expert].Dimension).ToArray();

        // Real items: content kept, atoms from the encoders (the same ones a re-encode runs).
        var samples = new[] { "BBQ", "toilet", "train" }.Select(n =>
        {
            var path = Path.Combine(media, n + ".wav");
            return File.Exists(path) ? File.ReadAllBytes(path) : throw new FileNotFoundException($"sample '{path}' is missing (pass --media DIR)", path);
        }).ToArray();
        embedder.Prepare(Target);
        var content = new List<(byte[] Bytes, IReadOnlyDictionary<AtomKey, float[]> Atoms)>();
        for (var i = 0; i < ContentItems; i++)
        {
            var bytes = (byte[])samples[i % samples.Length].Clone();
            // The low byte of the last two samples: a distinct file (and digest) per item, the same sound.
            bytes[^2] ^= (byte)(1 + i / samples.Length % 255);
            bytes[^4] ^= (byte)(i / samples.Length / 255);
            var atoms = await embedder.EncodeAsync([Target], new MediaInput(Modality.Audio, bytes, FileName: $"item-{i}.wav"));
            content.Add((bytes, atoms));
        }
        log($"  {ContentItems} real audio items encoded (their atoms stored as computed)");

        var random = new Random(11);
        var centres = dims.Select(d => Enumerable.Range(0, 200).Select(_ => Unit(Gaussian(random, d))).ToArray()).ToArray();
        await using var connection = await Database.DataSource.OpenConnectionAsync();
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await using (var writer = await connection.BeginBinaryImportAsync("COPY media (id, tenant, modality, source, sha256) FROM STDIN (FORMAT BINARY)"))
            {
                for (var i = 0; i < Items; i++)
                {
                    await writer.StartRowAsync();
                    await writer.WriteAsync(Id(i), NpgsqlDbType.Text);
                    await writer.WriteAsync(Tenant, NpgsqlDbType.Text);
                    await writer.WriteAsync("audio", NpgsqlDbType.Text);
                    await writer.WriteAsync("inline", NpgsqlDbType.Text);
                    await writer.WriteAsync(i < ContentItems ? MediaEventParser.Sha256Hex(content[i].Bytes) : i.ToString("x64", CultureInfo.InvariantCulture), NpgsqlDbType.Text);
                }
                await writer.CompleteAsync();
            }
            await using (var writer = await connection.BeginBinaryImportAsync("COPY media_content (media_id, data) FROM STDIN (FORMAT BINARY)"))
            {
                for (var i = 0; i < ContentItems; i++)
                {
                    await writer.StartRowAsync();
                    await writer.WriteAsync(Id(i), NpgsqlDbType.Text);
                    await writer.WriteAsync(content[i].Bytes, NpgsqlDbType.Bytea);
                }
                await writer.CompleteAsync();
            }
            await using (var writer = await connection.BeginBinaryImportAsync("COPY atoms (media_id, expert, model_digest, embedding) FROM STDIN (FORMAT BINARY)"))
            {
                for (var i = 0; i < Items; i++)
                    for (var k = 0; k < keys.Count; k++)
                    {
                        float[] atom;
                        if (i < ContentItems) atom = content[i].Atoms[keys[k]];
                        else
                        {
                            var c = centres[k][random.Next(200)];
                            var noise = Unit(Gaussian(random, dims[k]));
                            atom = Unit([.. c.Select((x, d) => x + 0.6f * noise[d])]);
                        }
                        await writer.StartRowAsync();
                        await writer.WriteAsync(Id(i), NpgsqlDbType.Text);
                        await writer.WriteAsync(keys[k].Expert, NpgsqlDbType.Text);
                        await writer.WriteAsync(keys[k].ModelDigest, NpgsqlDbType.Text);
                        await writer.WriteAsync(new Pgvector.Vector(atom), "vector");
                    }
                await writer.CompleteAsync();
            }
            await tx.CommitAsync();
        }
        foreach (var table in new[] { "media", "atoms", "media_content" })
            await Database.ExecuteAsync($"VACUUM ANALYZE {table}");
        log($"  archive: {Items:N0} audio items, {Items * keys.Count:N0} atoms ({string.Join(", ", keys.Select(k => k.Expert))})");
    }

    /// <summary>
    /// A backfill worker's services: encoding, the item pipeline with persistence, and what
    /// <c>AddReembedding</c> adds for the workers (<see cref="RunVersions"/>, <see cref="ItemRebuilder"/>),
    /// without the bus: the cases call the classes a <c>BackfillBatchConsumer</c> calls.
    /// </summary>
    private static IHost BuildHost(Dictionary<string, string?> settings)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory, Args = [] });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace); // stdout carries the report
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddFilter("FreeBind", LogLevel.Warning); // appsettings.json asks for Information
        builder.AddEncoding();
        builder.AddItemPipeline();
        builder.Services.AddSingleton<RunVersions>();
        builder.Services.AddSingleton<ItemRebuilder>();
        return builder.Build();
    }

    private static float[] Gaussian(Random random, int dim) =>
        [.. Enumerable.Range(0, dim).Select(_ => (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble())))];

    private static float[] Unit(float[] v)
    {
        var norm = MathF.Sqrt(v.Sum(x => x * x));
        for (var d = 0; d < v.Length; d++) v[d] /= norm;
        return v;
    }

    public async ValueTask DisposeAsync()
    {
        Host.Dispose();
        await Database.DisposeAsync();
    }
}
