using System.Diagnostics;
using FreeBind.Encoding.Spaces;
using FreeBind.Tests.Ingestion;
using FreeBind.Tests.Persistence.Versions;
using FreeBind.Tests.Services;
using Xunit.Abstractions;

namespace FreeBind.Tests.Cli;

/// <summary>
/// `freebind run`, `migrate` and `tags load` as a user meets them: a dependency that is down, a bad
/// label, a worker that has to stop — each ends promptly, with exit code 1 and one line on stderr,
/// never a stack trace; and a worker started before Postgres waits for it.
/// </summary>
[Collection(ServiceOutageCollection.Name)]
public sealed class WorkerCommandTests(ITestOutputHelper output)
{
    private sealed record Result(int ExitCode, string[] Errors, string All, TimeSpan Elapsed);

    private static ProcessStartInfo Freebind(IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "freebind.dll"), .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        foreach (var (key, value) in environment) psi.Environment[key] = value;
        return psi;
    }

    private static async Task<Result> RunAsync(ProcessStartInfo psi, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{psi.ArgumentList[1]} did not end within {timeout}:\n{await stderr}");
        }
        var err = await stderr;
        return new Result(process.ExitCode, err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("error:", StringComparison.Ordinal)).ToArray(),
            await stdout + err, watch.Elapsed);
    }

    private static void AssertOneLineFailure(Result r, string expected)
    {
        Assert.Equal(1, r.ExitCode);
        var line = Assert.Single(r.Errors);
        Assert.Contains(expected, line);
        Assert.DoesNotContain("   at ", r.All); // no stack trace
        Assert.DoesNotContain("Exception", r.All.Replace(line, "", StringComparison.Ordinal));
    }

    private static Dictionary<string, string?> Unreachable() => new()
    {
        ["FREEBIND_PG"] = "Host=127.0.0.1;Port=1;Username=postgres;Database=freebind",
        ["FREEBIND_REDIS"] = ServiceEnvironment.Redis,
        ["Persistence__StartupTimeout"] = "00:00:03",
        ["Spaces__ModelRoot"] = TestPaths.Data("models"),
        ["Spaces__Default"] = "imagebind",
        ["Onnx__ExecutionProvider"] = "cpu",
    };

    [Fact]
    public async Task Run_migrate_and_tags_load_end_in_one_line_when_postgres_stays_unreachable()
    {
        var labels = Path.GetTempFileName();
        await File.WriteAllTextAsync(labels, "dog\ncat\n");
        try
        {
            foreach (var args in new[] { new[] { "run" }, ["migrate"], ["tags", "load", "--tenant", "acme", "--vocabulary", "v", "--file", labels] })
            {
                var r = await RunAsync(Freebind(Unreachable(), args), TimeSpan.FromMinutes(1));
                output.WriteLine($"{string.Join(' ', args)}: exit {r.ExitCode} after {r.Elapsed.TotalSeconds:F1} s: {string.Join(" | ", r.Errors)}");
                AssertOneLineFailure(r, "Postgres at 127.0.0.1:1 is unreachable after 3 s");
                Assert.True(r.Elapsed < TimeSpan.FromSeconds(30), $"{args[0]} took {r.Elapsed}");
            }
        }
        finally
        {
            File.Delete(labels);
        }
    }

    [Fact]
    public async Task Tags_load_refuses_a_label_holding_a_nul_in_one_line()
    {
        var labels = Path.GetTempFileName();
        await File.WriteAllTextAsync(labels, "dog\nc\0at\n");
        try
        {
            var r = await RunAsync(Freebind(Unreachable(), "tags", "load", "--tenant", "acme", "--vocabulary", "v", "--file", labels), TimeSpan.FromMinutes(1));
            AssertOneLineFailure(r, "line 2: the label holds a control character");
        }
        finally
        {
            File.Delete(labels);
        }
    }

    [Fact]
    public async Task A_worker_started_before_postgres_waits_for_it_and_then_works()
    {
        await using var h = await IngestionHarness.StartAsync();
        await ServiceEnvironment.RunScriptAsync("stop-postgres");
        Process worker;
        try
        {
            worker = h.StartWorkerProcess("w1");
            // The worker is up and waiting: it has not given up nor exited.
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!h.Logs().Contains("Waiting for Postgres", StringComparison.Ordinal) && DateTime.UtcNow < deadline) await Task.Delay(100);
            Assert.Contains("Waiting for Postgres", h.Logs());
            Assert.False(worker.HasExited);
        }
        finally
        {
            await ServiceEnvironment.RunScriptAsync("start-postgres");
        }
        await h.ProduceAsync([("after-start", IngestionHarness.TextEvent("after-start", "postgres came back"))]);
        await h.WaitForRowsAsync(1, TimeSpan.FromMinutes(2));
        Assert.False(worker.HasExited);
    }

    [Fact]
    public async Task A_worker_that_must_stop_exits_promptly_with_code_1_and_one_line()
    {
        await using var h = await IngestionHarness.StartAsync();
        var worker = h.StartWorkerProcess("w1");
        await h.ProduceAsync(Enumerable.Range(0, 50).Select(i => ($"k{i}", IngestionHarness.TextEvent($"k{i}", $"caption {i}"))));
        await h.WaitForRowsAsync(50, TimeSpan.FromMinutes(2));

        // A version this worker cannot load (its digest does not match the model files here) goes live.
        var space = EngineFixture.Load("imagebind");
        var alien = await h.Database.Catalog().EnsureVersionAsync(space.Name, "sha256:" + new string('e', 64), space.Dimension, space.Manifest.ToCanonicalJson());
        await h.Database.MakeReadyAsync(alien);
        var cutOver = Stopwatch.StartNew();
        await h.Database.Lifecycle().CutOverAsync(alien);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await worker.WaitForExitAsync(cts.Token);
        output.WriteLine($"exited {worker.ExitCode} {cutOver.Elapsed.TotalSeconds:F1} s after the cut-over");

        Assert.Equal(1, worker.ExitCode);
        // Prompt: no 30 s drain for work the writer will never finish (the watcher polls every 30 s at most; it listens, so far less).
        Assert.True(cutOver.Elapsed < TimeSpan.FromSeconds(20), $"the worker took {cutOver.Elapsed} to stop");
        var fatal = h.Logs().Split('\n').Where(l => l.Contains("crit:", StringComparison.Ordinal)).ToList();
        Assert.Contains("cannot be loaded by this worker", Assert.Single(fatal));
        Assert.DoesNotContain("   at ", h.Logs());
    }
}
