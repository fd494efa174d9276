using System.Diagnostics;
using System.Text;
using FreeBind.Consumers.Contracts.Reembedding;
using FreeBind.Consumers.Hosting;
using FreeBind.Consumers.Reembedding;
using FreeBind.Encoding.Spaces;
using FreeBind.Tests.Ingestion;
using FreeBind.Tests.Services;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using static FreeBind.Tests.Reembedding.ReembeddingScenario;

namespace FreeBind.Tests.Reembedding;

/// <summary>
/// A run survives its processes and its database: `freebind reembed host` processes (saga host and
/// two workers) are killed with SIGKILL mid-backfill — the saga host first, then a worker in the
/// middle of a batch — then Postgres is stopped for 10 s; the run still ends active with every live
/// item written once (an audit trigger on the new table records each insert), every batch counted
/// once, and exact vectors. (A broker restart mid-backfill: <see cref="ReembeddingRabbitMqTests"/>.)
/// </summary>
[Collection(ServiceOutageCollection.Name)]
public sealed class ReembeddingFaultTests(EngineFixture engine, RabbitMqVirtualHost broker, ITestOutputHelper output)
    : IClassFixture<RabbitMqVirtualHost>, IClassFixture<EngineFixture>
{
    private const int Items = 96;
    private const int BatchSize = 6;
    private const int Batches = Items / BatchSize;

    private sealed class HostProcess(string name, Process process, StringBuilder log)
    {
        public string Name => name;
        public Process Process => process;
        public string Log { get { lock (log) return log.ToString(); } }
    }

    private readonly List<HostProcess> _hosts = [];

    private string Logs() => string.Join("\n", _hosts.Select(p => p.Log));

    // `freebind reembed host` as an operator runs it; returns once its bus is up (queues bound).
    private async Task<HostProcess> StartHostAsync(string name, Dictionary<string, string?> settings, string role)
    {
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "freebind.dll"), "reembed", "host", role])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        foreach (var (key, value) in settings) psi.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        psi.Environment["Logging__LogLevel__Default"] = "Warning";
        psi.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information";
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new StringBuilder();
        var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start freebind reembed host");
        void Line(string? line)
        {
            if (line is null) return;
            lock (log) log.AppendLine($"[{name}] {line}");
            if (line.Contains("Application started", StringComparison.Ordinal)) started.TrySetResult();
        }
        process.OutputDataReceived += (_, e) => Line(e.Data);
        process.ErrorDataReceived += (_, e) => Line(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var host = new HostProcess(name, process, log);
        _hosts.Add(host);
        await started.Task.WaitAsync(TimeSpan.FromMinutes(1));
        return host;
    }

    private void Note(string line) => output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {line}");

    private void Kill(HostProcess host)
    {
        host.Process.Kill(); // SIGKILL: no shutdown, no goodbye to the broker or Postgres
        host.Process.WaitForExit();
        Note($"killed {host.Name} (exit {host.Process.ExitCode})");
    }

    private async Task<int> WaitForBatchesAsync(Tests.Persistence.TestDatabase db, Guid id, int atLeast, Func<string> logs)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline)
        {
            ReembeddingRun? run = null;
            try
            {
                run = await Runs(db).LoadAsync(id);
            }
            catch (Npgsql.NpgsqlException)
            {
                // The pool's connections died with the Postgres outage: the next attempt opens new ones.
            }
            if (run is not null && run.CompletedBatches.Count >= atLeast)
            {
                Note($"{run.CompletedBatches.Count} batches done");
                Assert.True(run.CompletedBatches.Count < Batches, $"the backfill ended ({run.CompletedBatches.Count} batches) before the fault: slow the writes down");
                return run.CompletedBatches.Count;
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"fewer than {atLeast} batches completed\n{logs()}");
    }

    [Fact]
    public async Task Kill_9_of_the_saga_host_then_of_a_worker_mid_batch_and_Postgres_down_10_s_end_with_every_row_written_once()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind++");
        var ingestion = await h.StartWorkerAsync();
        var items = Enumerable.Range(0, Items).Select(i => Text($"t-{i:D3}", $"caption number {i}")).ToList();
        await h.ProduceAsync(items.Select(i => (i.Id, i.Event)));
        await ingestion.Metrics.WaitForCompletedAsync(Items, TimeSpan.FromMinutes(2));
        await h.StopWorkerAsync(ingestion);

        var space = EngineFixture.Load("imagebind++", FactorSelection.Parse("at-expertise", []));
        var version = await PublishAsync(h.Database, space);
        // Each insert into the new table is recorded (committed with it: a killed batch leaves no
        // trace) and takes 150 ms, so the faults land mid-backfill and a worker dies inside a batch.
        await h.Database.ScalarAsync<int>($"""
            CREATE TABLE test_backfill_audit (media_id text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
            CREATE FUNCTION test_backfill_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.15); RETURN NEW; END $$;
            CREATE FUNCTION test_backfill_audit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO test_backfill_audit (media_id) VALUES (NEW.media_id); RETURN NULL; END $$;
            CREATE TRIGGER test_backfill_slow BEFORE INSERT ON "{version.TableName}" FOR EACH ROW EXECUTE FUNCTION test_backfill_slow();
            CREATE TRIGGER test_backfill_audit AFTER INSERT OR UPDATE ON "{version.TableName}" FOR EACH ROW EXECUTE FUNCTION test_backfill_audit();
            SELECT 1;
            """);

        var settings = Settings(h, broker, BatchSize, sampleSize: 10);
        try
        {
            Note("ingested");
            var starting = new[] { StartHostAsync("saga-1", settings, "--saga"), StartHostAsync("worker-1", settings, "--worker"), StartHostAsync("worker-2", settings, "--worker") };
            using var client = await ReembeddingScenario.StartHostAsync(settings, ReembeddingRoles.Client);
            var (saga1, worker1) = (await starting[0], await starting[1]);
            await starting[2];
            var id = RunIds.For(space.Name, space.Version);
            await client.Services.GetRequiredService<IBus>().Publish(new StartReembedding(id, space.Name, space.Version, AutoCutover: true, "test"));

            var done = await WaitForBatchesAsync(h.Database, id, 2, Logs);
            Kill(saga1);
            await StartHostAsync("saga-2", settings, "--saga");

            done = await WaitForBatchesAsync(h.Database, id, done + 2, Logs);
            Kill(worker1);
            // The restarted worker joins when it is up; worker-2 goes on meanwhile.
            var worker3 = StartHostAsync("worker-3", settings, "--worker");

            await WaitForBatchesAsync(h.Database, id, done + 1, Logs);
            await ServiceEnvironment.RunScriptAsync("stop-postgres");
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(10)); // the outage itself
            }
            finally
            {
                await ServiceEnvironment.RunScriptAsync("start-postgres");
            }

            Note("postgres back");
            await worker3;
            var run = await WaitForAsync(h.Database, id, "Active", TimeSpan.FromMinutes(4), Logs);
            Note("active");
            Assert.Equal(Items, run.Items);
            Assert.Equal(Items, run.Done);
            Assert.Equal(Batches, run.NextSequence);
            Assert.Equal(Enumerable.Range(0, Batches).Select(i => (long)i), run.CompletedBatches);
            Assert.Empty(run.FailedByReason);
            Assert.Equal(version.Id, (await h.ActiveVersionAsync()).Id);
            // Every live item inserted once: a redelivered batch (the killed worker's) wrote nothing again.
            var inserts = await h.Database.ListAsync<string>("SELECT media_id FROM test_backfill_audit");
            Assert.Equal(items.Select(i => i.Id).Order(StringComparer.Ordinal), inserts.Order(StringComparer.Ordinal));
            await AssertFromScratchAsync(engine, h.Database, version, space, items);
            Note("checked");
        }
        finally
        {
            foreach (var host in _hosts.Where(p => !p.Process.HasExited))
            {
                host.Process.Kill();
                await host.Process.WaitForExitAsync();
            }
            foreach (var host in _hosts) host.Process.Dispose();
        }
    }
}
