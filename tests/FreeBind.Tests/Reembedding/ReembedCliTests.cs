using System.Diagnostics;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Reembedding;
using FreeBind.Persistence.Sagas;
using FreeBind.Tests.Persistence;
using FreeBind.Tests.Services;

namespace FreeBind.Tests.Reembedding;

/// <summary>
/// Bad operator input to <c>freebind reembed</c> and <c>spaces publish</c>, as a user runs them (a
/// child process): one line on stderr, exit code 1, nothing changed.
/// </summary>
[Collection(RabbitMqCollection.Name)]
public sealed class ReembedCliTests(MigratedDatabase database, RabbitMqVirtualHost broker)
    : IClassFixture<MigratedDatabase>, IClassFixture<RabbitMqVirtualHost>
{
    private SagaStore<ReembeddingRun> Runs => new(database.Db.DataSource, ReembeddingHosting.RunsTable);

    private async Task<(int Code, string Out, string[] Errors)> FreebindAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "freebind.dll"), .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        psi.Environment["Persistence__ConnectionString"] = database.Db.ConnectionString;
        psi.Environment["Messaging__RabbitMq"] = broker.Uri;
        psi.Environment["Cache__Redis"] = ServiceEnvironment.Redis;
        psi.Environment["Spaces__ManifestDirectory"] = Path.Combine(TestPaths.RepoRoot, "spaces");
        psi.Environment["Spaces__ModelRoot"] = TestPaths.Data("models");
        psi.Environment["Onnx__ExecutionProvider"] = "cpu";
        psi.Environment["Logging__LogLevel__Default"] = "Warning";
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, (await stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    private static void AssertOneErrorLine((int Code, string Out, string[] Errors) result, string expected)
    {
        Assert.Equal(1, result.Code);
        var line = Assert.Single(result.Errors);
        Assert.StartsWith("error: ", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
    }

    private async Task<ReembeddingRun> StoredRunAsync(string space, string state)
    {
        var run = new ReembeddingRun
        {
            CorrelationId = Guid.NewGuid(), CurrentState = state, ExclusiveKey = space, Space = space,
            TargetDigest = "sha256:" + new string('e', 64), StartedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow,
        };
        await Runs.InsertAsync(run);
        return run;
    }

    [Fact]
    public async Task A_malformed_or_unknown_run_id_is_one_line()
    {
        AssertOneErrorLine(await FreebindAsync("reembed", "status", "not-a-run"), "'not-a-run' is not a run id");
        var unknown = Guid.NewGuid();
        AssertOneErrorLine(await FreebindAsync("reembed", "pause", unknown.ToString()), $"no re-embedding run {unknown}");
    }

    [Fact]
    public async Task A_cut_over_before_the_verify_gate_changes_nothing()
    {
        var run = await StoredRunAsync("cli-cutover", "Backfilling");
        AssertOneErrorLine(await FreebindAsync("reembed", "cutover", run.CorrelationId.ToString()), "is backfilling: a cut-over needs the verify gate to have passed");
        var stored = (await Runs.LoadAsync(run.CorrelationId))!;
        Assert.Equal("Backfilling", stored.CurrentState);
        Assert.Equal(1, stored.Version);
    }

    [Fact]
    public async Task A_rollback_without_a_retained_version_is_refused()
    {
        AssertOneErrorLine(await FreebindAsync("reembed", "rollback", "no-such-space"), "space 'no-such-space' has no active version");
    }

    [Fact]
    public async Task A_second_run_of_a_space_is_refused_before_anything_is_registered()
    {
        var holder = await StoredRunAsync("imagebind++", "Backfilling");
        var versionsBefore = await database.Db.ScalarAsync<long>("SELECT count(*) FROM space_versions");
        AssertOneErrorLine(await FreebindAsync("reembed", "start", "--space", "imagebind++", "--preset", "at-expertise"),
            $"run {holder.CorrelationId} of 'imagebind++' is backfilling; cancel it");
        AssertOneErrorLine(await FreebindAsync("spaces", "publish", "--space", "imagebind++", "--preset", "versatile"),
            $"run {holder.CorrelationId} of 'imagebind++' is backfilling");
        Assert.Equal(versionsBefore, await database.Db.ScalarAsync<long>("SELECT count(*) FROM space_versions"));
        Assert.Equal(1, (await Runs.LoadAsync(holder.CorrelationId))!.Version);
    }
}
