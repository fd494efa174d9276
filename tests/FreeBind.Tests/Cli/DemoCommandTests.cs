using System.CommandLine;
using System.Diagnostics;
using FreeBind.Consumers.Cli;
using FreeBind.Consumers.Demo;
using FreeBind.Encoding.Spaces;
using FreeBind.Persistence;
using FreeBind.Persistence.Spaces;
using FreeBind.Tests.Services;
using FreeBind.Consumers.Reembedding;
using FreeBind.Persistence.Reembedding;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace FreeBind.Tests.Cli;

/// <summary>
/// <c>freebind demo</c> (README command 1, through scripts/demo.sh) on the real services, the stand-in
/// models and the sample media: the streaming part, then the space update — another preset
/// published, the re-embedding saga's run planned as a pure re-fusion, backfilled, verified and cut
/// over — with neighbours before and after; and a re-embedding step that breaks ends the demo with
/// one line, the active version untouched. Each run gets a database name of its own.
/// </summary>
public sealed class DemoCommandTests
{
    private const string Space = "imagebind++";

    private static string ConnectionString(string database) =>
        new NpgsqlConnectionStringBuilder(ServiceEnvironment.Postgres) { Database = database }.ConnectionString;

    private static async Task DropAsync(string database)
    {
        var admin = new NpgsqlConnectionStringBuilder(ServiceEnvironment.Postgres) { Database = "postgres", Pooling = false }.ConnectionString;
        await using var connection = new NpgsqlConnection(admin);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)", connection);
        await cmd.ExecuteNonQueryAsync();
    }

    // A demo database as an earlier run would leave it (here: with a table of its own).
    private static async Task CreateWithLeftoverAsync(string database)
    {
        await DropAsync(database);
        var admin = new NpgsqlConnectionStringBuilder(ServiceEnvironment.Postgres) { Database = "postgres", Pooling = false }.ConnectionString;
        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database}\"", connection);
            await create.ExecuteNonQueryAsync();
        }
        await using var dataSource = PersistenceExtensions.CreateDataSource(ConnectionString(database));
        await using var cmd = dataSource.CreateCommand("CREATE TABLE left_by_an_earlier_run (id int)");
        await cmd.ExecuteNonQueryAsync();
    }

    // "v3   a 0.9, b 0.8" → "a 0.9, b 0.8"
    private static string Neighbours(string line) => System.Text.RegularExpressions.Regex.Replace(line.Trim(), @"^v\d+\s+", "");

    private static async Task<T> InDemoDatabaseAsync<T>(string configured, Func<NpgsqlDataSource, Task<T>> read)
    {
        await using var dataSource = PersistenceExtensions.CreateDataSource(DemoDatabase.For(ConnectionString(configured)));
        return await read(dataSource);
    }

    [Fact]
    public async Task The_demo_streams_then_switches_the_preset_re_embeds_by_re_fusion_cuts_over_and_prints_neighbours_before_and_after()
    {
        var configured = "freebind_test_demo_" + Guid.NewGuid().ToString("N")[..8];
        var psi = new ProcessStartInfo("dotnet",
            [Path.Combine(AppContext.BaseDirectory, "freebind.dll"), "demo", "--space", Space, "--models", TestPaths.Data("models"), "--media", TestPaths.Media])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        psi.Environment["Persistence__ConnectionString"] = ConnectionString(configured);
        psi.Environment["Cache__Redis"] = ServiceEnvironment.Redis;
        psi.Environment["Spaces__ManifestDirectory"] = Path.Combine(TestPaths.RepoRoot, "spaces");
        psi.Environment["Onnx__ExecutionProvider"] = "cpu";
        try
        {
            await CreateWithLeftoverAsync(configured + DemoDatabase.Suffix);
            using var process = Process.Start(psi)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4)))
            {
                try
                {
                    await process.WaitForExitAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    process.Kill(entireProcessTree: true);
                    throw new TimeoutException($"freebind demo did not end within 4 minutes:\n{await stdout}\n{await stderr}");
                }
            }
            var (output, errors) = (await stdout, await stderr);
            Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}\n{output}\n{errors}");
            var lines = CliRun.Lines(output);

            // The streaming part, as before: every item's tags and neighbours in the first version.
            Assert.Contains(lines, l => l.StartsWith("Streamed 9 events", StringComparison.Ordinal) && l.Contains(configured + DemoDatabase.Suffix, StringComparison.Ordinal));
            Assert.Equal(9, lines.Count(l => l.Contains("nearest: ", StringComparison.Ordinal)));

            // The space update: published, planned as a pure re-fusion of all 9 items, through the
            // saga's phases to active, with the verify gate's stored report and its drift per modality.
            Assert.Contains(lines, l => l.StartsWith("published   v", StringComparison.Ordinal) && l.Contains("(preset at-expertise)", StringComparison.Ordinal));
            Assert.Contains("change      factor clap.audio: 0.5 → 0.8 (re-fusion)", lines);
            Assert.Contains("plan        9 items: re-fuse 9 — a pure re-fusion from the stored atoms: no media read, no encoder run", lines);
            var phases = lines.Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s+\d+\.\d s    ")).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[2]).ToList();
            Assert.Equal("active", phases[^1]);
            Assert.Contains("ready", phases);
            Assert.Contains(lines, l => l.Contains("verify gate of run", StringComparison.Ordinal) && l.EndsWith("PASSED", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.Contains("coverage  9 of 9 live items written, 0 listed failures, 0 missing", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.Contains("sample    9 items recomputed from content, 0 mismatches", StringComparison.Ordinal));
            foreach (var modality in new[] { "audio", "image", "text" })
                Assert.Contains(lines, l => l.Contains($"drift     {modality}", StringComparison.Ordinal) && l.Contains("mean cosine", StringComparison.Ordinal));

            // The cut-over happened in the demo's database: the at-expertise version is active, the
            // version the worker registered first is retired and kept for rollback.
            var first = EngineFixture.Load(Space);
            var switched = EngineFixture.Load(Space, FactorSelection.Parse("at-expertise", []));
            var versions = await InDemoDatabaseAsync(configured, ds => new SpaceCatalog(ds, NullLogger<SpaceCatalog>.Instance).ListAsync(Space));
            var before = Assert.Single(versions, v => v.Version.Digest == first.Version).Version;
            var after = Assert.Single(versions, v => v.Version.Digest == switched.Version).Version;
            Assert.Equal(SpaceVersionState.Retired, before.State);
            Assert.Equal(SpaceVersionState.Active, after.State);
            Assert.Contains($"cut over    v{after.Id} now serves '{Space}' (freebind_search answers from it); v{before.Id} is retired, kept 7 days for `freebind reembed rollback {Space}`", lines);

            // Neighbours of one item per modality, in the old and the new version, side by side; the
            // switch moved the audio factor, so the audio query's similarities changed.
            var header = lines.FindIndex(l => l.StartsWith($"== nearest neighbours before (v{before.Id}", StringComparison.Ordinal));
            Assert.True(header >= 0, output);
            foreach (var query in new[] { "BBQ.wav", "an audio of barbeque", "BBQ.jpeg" })
            {
                var at = lines.FindIndex(header, l => l.StartsWith(query + " ", StringComparison.Ordinal));
                Assert.True(at > header, $"no before/after lines for {query}:\n{output}");
                Assert.StartsWith($"v{before.Id} ", lines[at][22..].TrimStart(), StringComparison.Ordinal);
                Assert.StartsWith($"v{after.Id} ", lines[at + 1].TrimStart(), StringComparison.Ordinal);
            }
            var audio = lines.FindIndex(header, l => l.StartsWith("BBQ.wav ", StringComparison.Ordinal));
            Assert.NotEqual(Neighbours(lines[audio][22..]), Neighbours(lines[audio + 1]));

            // The demo's database was recreated: what a previous run left there is gone.
            Assert.False(await InDemoDatabaseAsync(configured, async ds =>
                (bool)(await ds.CreateCommand("SELECT to_regclass('left_by_an_earlier_run') IS NOT NULL").ExecuteScalarAsync())!));
            Assert.False(errors.Contains("   at ", StringComparison.Ordinal), "a stack trace on stderr:\n" + errors);
        }
        finally
        {
            await DropAsync(configured + DemoDatabase.Suffix);
        }
    }

    [Fact]
    public async Task A_re_embedding_run_that_fails_ends_the_demo_with_one_line_and_leaves_the_active_version_untouched()
    {
        var configured = "freebind_test_demo_" + Guid.NewGuid().ToString("N")[..8];
        // A backfill machine on which one of the space's two projector sets was not deployed.
        var noProjectors = Directory.CreateTempSubdirectory("freebind-demo-models-").FullName;
        Directory.CreateSymbolicLink(Path.Combine(noProjectors, "IB_PP_M_Proj"), TestPaths.Data("models", "IB_PP_M_Proj"));
        var demo = DemoCommand.Build(builder =>
        {
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Persistence:ConnectionString"] = ConnectionString(configured),
                ["Cache:Redis"] = ServiceEnvironment.Redis,
                ["Spaces:ManifestDirectory"] = Path.Combine(TestPaths.RepoRoot, "spaces"),
                ["Onnx:ExecutionProvider"] = "cpu",
            });
            // The re-embedding workers load the version from that folder: the plan step cannot, and the saga fails the run.
            builder.Services.AddSingleton(sp => new RunVersions(sp.GetRequiredService<SpaceCatalog>(), sp.GetRequiredService<VersionDocuments>(),
                new ManifestCatalog(new SpacesOptions { ModelRoot = noProjectors, ManifestDirectory = Path.Combine(TestPaths.RepoRoot, "spaces") })));
        });
        try
        {
            var (code, output, errors) = await CliRun.RunAsync(new RootCommand { demo },
                "demo", "--space", Space, "--models", TestPaths.Data("models"), "--media", TestPaths.Media);

            Assert.True(code == 1, $"exit code {code}\n{output}\n{errors}");
            var line = Assert.Single(CliRun.Lines(errors), l => l.StartsWith("error:", StringComparison.Ordinal));
            Assert.True(System.Text.RegularExpressions.Regex.IsMatch(line,
                @"^error: the re-embedding run [0-9a-f-]{36} failed: plan: version v(\d+) of 'imagebind\+\+' cannot be loaded here: missing file 'IB_PP_G_Proj/.*; its version v\1 was dropped and v\d+ stays active$"), line);
            Assert.False(errors.Contains("   at ", StringComparison.Ordinal), "a stack trace on stderr:\n" + errors);
            Assert.Contains(CliRun.Lines(output), l => l.StartsWith("published   v", StringComparison.Ordinal));
            Assert.DoesNotContain(CliRun.Lines(output), l => l.StartsWith("cut over", StringComparison.Ordinal));

            var first = EngineFixture.Load(Space);
            var versions = await InDemoDatabaseAsync(configured, ds => new SpaceCatalog(ds, NullLogger<SpaceCatalog>.Instance).ListAsync(Space));
            Assert.Equal(SpaceVersionState.Active, Assert.Single(versions, v => v.Version.Digest == first.Version).Version.State);
            var dropped = Assert.Single(versions, v => v.Version.Digest != first.Version).Version;
            Assert.Equal(SpaceVersionState.Cancelled, dropped.State);
            Assert.False(dropped.HasTable);
        }
        finally
        {
            await DropAsync(configured + DemoDatabase.Suffix);
            Directory.Delete(noProjectors, recursive: true);
        }
    }
}
