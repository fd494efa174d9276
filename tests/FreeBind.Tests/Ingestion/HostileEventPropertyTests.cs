using System.Diagnostics;

using System.Text.Json;
using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Ingestion;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace FreeBind.Tests.Ingestion;

/// <summary>
/// The rule behind every hostile-event finding, as a property: generated hostile events (wrong
/// types, broken encodings, sizes over every cap, paths that escape the roots) interleaved with
/// good ones on every partition. Each good event is stored exactly once, each bad one is
/// dead-lettered exactly once with a foreseen class, the worker stays up, and a restart publishes
/// nothing twice. The seed is printed; FREEBIND_PROPERTY_SEED replays a run.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class HostileEventPropertyTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("freebind-property-");

    private sealed record Case(byte[]? Key, byte[]? Value, bool Good, string What);

    private static byte[] Utf8(string s) => System.Text.Encoding.UTF8.GetBytes(s);

    private static string Json(object o) => JsonSerializer.Serialize(o);

    /// <summary>A folder with one good image and every way out of it: links out, a linked folder, a FIFO, a sibling-prefix folder.</summary>
    private void BuildRoot()
    {
        File.Copy(TestPaths.Sample("BBQ.jpeg"), Path.Combine(_root.FullName, "ok.jpeg"));
        File.CreateSymbolicLink(Path.Combine(_root.FullName, "out.jpeg"), "/etc/hostname");
        File.CreateSymbolicLink(Path.Combine(_root.FullName, "zero.jpeg"), "/dev/zero");
        Directory.CreateSymbolicLink(Path.Combine(_root.FullName, "etc"), "/etc");
        using (var mkfifo = Process.Start("mkfifo", [Path.Combine(_root.FullName, "pipe.jpeg")])!) mkfifo.WaitForExit();
        var sibling = Directory.CreateDirectory(_root.FullName + "-evil").FullName;
        File.Copy(TestPaths.Sample("BBQ.jpeg"), Path.Combine(sibling, "x.jpeg"), overwrite: true);
    }

    private List<Case> Generate(Random random, int count)
    {
        var root = _root.FullName;
        string Uri(string path) => new Uri(path).AbsoluteUri;
        var hostile = new List<Func<string, Case>>
        {
            // types
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":7,"type":"upserted","modality":"text","text":"x"}"""), false, "number tenant"),
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":["upserted"],"modality":"text","text":"x"}"""), false, "array type"),
            id => new(Utf8(id), Utf8($$"""{"schema":{{random.Next(2, 99)}}.5,"id":"{{id}}","tenant":"acme","type":"upserted","modality":"text","text":"x"}"""), false, "fractional schema"),
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"text","text":"x","metadata":[1]}"""), false, "array metadata"),
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"image","data":12345}"""), false, "number data"),
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"image","uri":true}"""), false, "bool uri"),
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":7,"text":"x"}"""), false, "number modality"),
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"smell","text":"x"}"""), false, "unknown modality"),
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"text","text":"x","uri":"file:///x"}"""), false, "two sources"),
            // encodings
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"text","text":"a\ud83d"}"""), false, "lone high surrogate"),
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme\udc00","type":"upserted","modality":"text","text":"x"}"""), false, "lone low surrogate"),
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"text","text":"x","metadata":{"k":"\u0000"} }"""), false, "NUL in metadata"),
            id => new(Utf8(id), [.. Utf8($$"""{"id":"{{id}}","tenant":"ac"""), 0xC0, 0xAF, .. Utf8("""me","type":"upserted","modality":"text","text":"x"}""")], false, "overlong UTF-8"),
            id => new(Utf8(id), [0xEF, 0xBB, 0xBF, .. Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"text","text":"x"}""")], false, "BOM"),
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"text","te"""), false, "truncated JSON"),
            id => new(Utf8(id), null, false, "tombstone"),
            id => { var b = new byte[random.Next(1, 64)]; random.NextBytes(b); return new(Utf8(id), b, false, "random bytes"); },
            id => new(Utf8(id + "-other"), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"text","text":"x"}"""), false, "key differs from id"),
            id => new([0xFF, .. Utf8(id)], Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"text","text":"x"}"""), false, "key not UTF-8"),
            id => new(Utf8(id), Utf8($$"""{"id":"{{id}}","tenant":"acme","type":"upserted","modality":"text","data":"{{Convert.ToBase64String([0xFF, 0xFE, 0x00])}}"}"""), false, "text data not UTF-8"),
            // sizes
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "image", data = Convert.ToBase64String(new byte[random.Next(270_000, 400_000)]) })), false, "inline over the cap"),
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "text", text = "x", metadata = new { blob = new string('m', 20_000) } })), false, "metadata over the cap"),
            id => new(Utf8(id), Utf8(Json(new { id = id + new string('i', 300), tenant = "acme", type = "upserted", modality = "text", text = "x" })), false, "id too long"),
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "text", text = new string('w', 20_000) })), false, "text over the preprocessing cap"),
            // paths
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "image", uri = Uri(Path.Combine(root, "out.jpeg")) })), false, "symlink out"),
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "image", uri = Uri(Path.Combine(root, "zero.jpeg")) })), false, "link to /dev/zero"),
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "image", uri = Uri(Path.Combine(root, "etc", "hostname")) })), false, "linked folder out"),
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "image", uri = Uri(Path.Combine(root, "pipe.jpeg")) })), false, "FIFO"),
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "image", uri = Uri(Path.Combine(root + "-evil", "x.jpeg")) })), false, "sibling prefix"),
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "image", uri = "file://" + root + "/../../../etc/passwd" })), false, "dot-dot"),
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "image", uri = Uri(Path.Combine(root, "missing.jpeg")) })), false, "missing file"),
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "image", uri = "ftp://example.org/x.jpeg" })), false, "ftp"),
            // content
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "image", data = Convert.ToBase64String(File.ReadAllBytes(TestPaths.Sample("BBQ.jpeg"))[..random.Next(100, 4000)]) })), false, "truncated JPEG"),
            id => { var b = new byte[random.Next(100, 5000)]; random.NextBytes(b); return new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "audio", data = Convert.ToBase64String(b) })), false, "random audio"); },
        };
        var good = new List<Func<string, Case>>
        {
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "text", text = $"good caption {id} {random.Next()}" })), true, "text"),
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "text", text = "emoji ✓ 🐕 and NUL \0 inside", metadata = new { note = "✓", n = 1.5 } })), true, "unicode text"),
            id => new(Utf8(id), Utf8(Json(new { id, tenant = "acme", type = "upserted", modality = "image", uri = Uri(Path.Combine(root, "ok.jpeg")) })), true, "image in the root"),
        };
        return [.. Enumerable.Range(0, count).Select(i =>
        {
            var id = $"p{i:D4}";
            return random.NextDouble() < 0.45
                ? hostile[random.Next(hostile.Count)](id)
                : good[random.Next(10) switch { < 7 => 0, < 9 => 1, _ => 2 }](id);
        })];
    }

    [Fact]
    public async Task Hostile_events_interleaved_with_good_ones_on_every_partition_are_each_stored_or_dead_lettered_exactly_once()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("FREEBIND_PROPERTY_SEED"), out var s) ? s : Random.Shared.Next();
        output.WriteLine($"seed {seed} (FREEBIND_PROPERTY_SEED={seed} replays this run)");
        BuildRoot();
        var cases = Generate(new Random(seed), 160);
        var good = cases.Where(c => c.Good).Select(c => System.Text.Encoding.UTF8.GetString(c.Key!)).ToList();
        var bad = cases.Where(c => !c.Good).ToList();

        await using var h = await IngestionHarness.StartAsync("imagebind");
        await h.InstallWriteAuditAsync();
        var settings = new Dictionary<string, string?>
        {
            ["Content:AllowedFileRoots:0"] = _root.FullName,
            // Copies of the largest events cannot go whole to the dead-letter topic: they go without their value.
            ["Kafka:Producer:message.max.bytes"] = "300000",
        };
        var worker = await h.StartWorkerAsync(overrides: settings);
        for (var i = 0; i < cases.Count; i++)
            await h.ProduceBytesAsync(cases[i].Key, cases[i].Value, partition: i % IngestionHarness.Partitions);

        await worker.Metrics.WaitForCompletedAsync(cases.Count, TimeSpan.FromMinutes(4));
        Assert.Null(worker.Services.GetRequiredService<IngestionWorker>().Fault);
        await h.AssertExactlyOnceAsync(good);

        var dead = h.DeadLetters(bad.Count);
        var unexplained = new List<string>();
        foreach (var c in bad)
        {
            var copies = dead.Where(d => d.Message.Message.Key.AsSpan().SequenceEqual(c.Key)).ToList();
            if (copies.Count != 1) unexplained.Add($"{c.What}: {copies.Count} dead letters");
            else if (copies[0].Letter.ErrorClass == ErrorClasses.Internal) unexplained.Add($"{c.What}: internal: {copies[0].Letter.ErrorMessage}");
            else if (!copies[0].Letter.ValueDropped && !(copies[0].Message.Message.Value ?? []).AsSpan().SequenceEqual(c.Value ?? [])) unexplained.Add($"{c.What}: value changed");
        }
        foreach (var group in dead.GroupBy(d => d.Letter.ErrorClass).OrderBy(g => g.Key))
            output.WriteLine($"{group.Key}: {group.Count()}");
        Assert.True(unexplained.Count == 0, string.Join("\n", unexplained));
        Assert.Equal(bad.Count, dead.Count);

        // A restart republishes nothing: every good item's output exists exactly once.
        await h.StopWorkerAsync(worker);
        var again = await h.StartWorkerAsync(overrides: settings);
        await h.ProduceAsync([("sentinel", IngestionHarness.TextEvent("sentinel", "after the restart"))]);
        await again.Metrics.WaitForCompletedAsync(1, TimeSpan.FromMinutes(2));
        Assert.Equal(1, again.Metrics.Completed);
        var published = h.ReadTopic(h.OutputTopic, good.Count + 1, TimeSpan.FromSeconds(30)).Select(m => m.Message.Key).ToList();
        Assert.Equal(good.Append("sentinel").Order(StringComparer.Ordinal), published.Order(StringComparer.Ordinal));
        Assert.Equal(bad.Count, h.DeadLetters(bad.Count, TimeSpan.FromSeconds(5)).Count);
    }

    public void Dispose()
    {
        _root.Delete(recursive: true);
        if (Directory.Exists(_root.FullName + "-evil")) Directory.Delete(_root.FullName + "-evil", recursive: true);
    }
}
