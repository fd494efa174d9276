using System.Diagnostics;
using FreeBind.Encoding.Spaces;
using FreeBind.Tests.Ingestion;
using FreeBind.Tests.Persistence;
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

    [Theory]
    [InlineData("Ingestion__ResumeInFlight", "5000", "error: Ingestion:ResumeInFlight must be below Ingestion:MaxInFlight")]
    [InlineData("Ingestion__MaxInFlight", "0", "error: Ingestion:MaxInFlight must be between 1 and 1000000")]
    [InlineData("Ingestion__WriteLanes", "two", "error: setting Ingestion:WriteLanes is 'two', which is not a whole number")]
    [InlineData("Content__AllowedFileRoots__0", "media/uploads", "error: Content:AllowedFileRoots must be absolute paths")]
    [InlineData("Preprocessing__MaxTextLength", "0", "error: Preprocessing:MaxTextLength must be positive")]
    [InlineData("Kafka__Topic", "", "error: Kafka:Topic is required")]
    [InlineData("Kafka__StartupTimeout", "soon", "error: setting Kafka:StartupTimeout is 'soon', which is not a duration")]
    [InlineData("Kafka__Consumer__receive.message.max.bytes", "1000000", "error: the Kafka consumer's fetch sizes (fetch.max.bytes 999488, receive.message.max.bytes 1000000) cannot carry the largest event")]
    public async Task A_wrong_setting_stops_run_before_any_work_in_one_line_naming_the_setting(string key, string value, string expected)
    {
        var environment = Unreachable();
        environment[key] = value;
        var r = await RunAsync(Freebind(environment, "run"), TimeSpan.FromMinutes(1));
        output.WriteLine($"{key}={value}: exit {r.ExitCode} after {r.Elapsed.TotalSeconds:F1} s: {string.Join(" | ", r.Errors)}");
        AssertOneLineFailure(r, expected);
        Assert.StartsWith(expected, r.Errors[0]);
        Assert.DoesNotContain("Waiting for", r.All); // refused before any service was tried
    }

    [Fact]
    public async Task Run_with_a_partly_filled_model_folder_stops_in_one_line_naming_the_first_missing_file_and_the_count()
    {
        await using var db = await TestDatabase.CreateAsync();
        var models = Directory.CreateTempSubdirectory("freebind-partial-models-");
        try
        {
            // One of imagebind's four files: the three others are missing.
            Directory.CreateDirectory(Path.Combine(models.FullName, "encoders", "imagebind"));
            File.CreateSymbolicLink(Path.Combine(models.FullName, "encoders", "imagebind", "vision.onnx"), TestPaths.Data("models", "encoders", "imagebind", "vision.onnx"));
            var environment = Unreachable();
            environment["Persistence__ConnectionString"] = db.ConnectionString;
            var r = await RunAsync(Freebind(environment, "run", "--models", models.FullName), TimeSpan.FromMinutes(1));
            output.WriteLine(r.All);

            Assert.Equal(1, r.ExitCode);
            var fatal = Assert.Single(r.All.Split('\n'), l => l.Contains("crit:", StringComparison.Ordinal));
            Assert.Contains("The worker stops: the model folder lacks 3 files the space needs (first: missing file 'encoders/imagebind/audio.onnx'", fatal);
            Assert.Contains("pass --models or set Spaces__ModelRoot", fatal);
            Assert.DoesNotContain("text.onnx", fatal);
            Assert.DoesNotContain("   at ", r.All);
        }
        finally
        {
            models.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Run_stops_in_one_line_when_kafka_stays_unreachable_at_start()
    {
        await using var db = await TestDatabase.CreateAsync();
        var environment = Unreachable();
        environment["Persistence__ConnectionString"] = db.ConnectionString;
        environment["Kafka__BootstrapServers"] = "127.0.0.1:1";
        environment["Kafka__StartupTimeout"] = "00:00:03";
        var r = await RunAsync(Freebind(environment, "run"), TimeSpan.FromMinutes(1));
        output.WriteLine($"exit {r.ExitCode} after {r.Elapsed.TotalSeconds:F1} s\n{r.All}");

        Assert.Equal(1, r.ExitCode);
        var fatal = Assert.Single(r.All.Split('\n'), l => l.Contains("crit:", StringComparison.Ordinal));
        Assert.Contains("The worker stops: Kafka at 127.0.0.1:1 is unreachable after 3 s", fatal);
        Assert.Contains("check Kafka:BootstrapServers", fatal);
        Assert.Contains("Waiting for Kafka", r.All);
        Assert.True(r.Elapsed < TimeSpan.FromSeconds(30), $"run took {r.Elapsed}");
        Assert.DoesNotContain("   at ", r.All);
        // Each refused connection is not a log line of its own: the wait speaks every 10 s.
        Assert.True(r.All.Split('\n').Count(l => l.Contains("warn:", StringComparison.Ordinal)) <= 4, r.All);
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
