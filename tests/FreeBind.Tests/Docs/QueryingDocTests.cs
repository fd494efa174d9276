using System.Diagnostics;
using System.Text.RegularExpressions;
using FreeBind.Tests.Persistence;
using Npgsql;

namespace FreeBind.Tests.Docs;

/// <summary>docs/querying.md's psql example runs as written against a real database, whichever table the active version has.</summary>
public sealed partial class QueryingDocTests(MigratedDatabase fixture) : IClassFixture<MigratedDatabase>
{
    private static string Doc => File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "querying.md"));

    [Fact]
    public void The_page_names_no_version_table_by_hand()
    {
        // A table name like embeddings_v3 is one deployment's accident; it changes with every cut-over.
        Assert.DoesNotMatch(VersionTable(), Doc);
    }

    [Fact]
    public async Task The_nearest_neighbours_example_runs_in_psql()
    {
        var snippet = Regex.Match(Doc, @"-- Ten nearest neighbours.*?\n\n", RegexOptions.Singleline).Value;
        Assert.Contains(@"\gset", snippet);
        var catalog = fixture.Db.Catalog();
        // Earlier versions exist, so the active one's table is not the first id: a hard-coded name would miss it.
        await catalog.EnsureVersionAsync("imagebind++", "sha256:old-a", 8, "{}");
        await catalog.EnsureVersionAsync("imagebind++", "sha256:old-b", 8, "{}");
        var active = await catalog.EnsureVersionAsync("imagebind++", "sha256:served", 8, "{}");
        var items = TestData.Items(20, 8, "img-", seed: 5);
        items[1] = TestData.Item("img-0001", 99, 8);
        await fixture.Db.Store().WriteBatchAsync(active, items);
        await catalog.ActivateAsync("imagebind++", "sha256:served");

        var output = await PsqlAsync(snippet);
        var first = output.Split('\n', StringSplitOptions.RemoveEmptyEntries)[0].Split('|');
        Assert.Equal("img-0001", first[0]);       // an item is its own nearest neighbour
        Assert.Equal("1.0000", first[1]);
        Assert.Equal(10, output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    private async Task<string> PsqlAsync(string sql)
    {
        var cs = new NpgsqlConnectionStringBuilder(fixture.Db.ConnectionString);
        var psi = new ProcessStartInfo("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment["PGHOST"] = cs.Host;
        psi.Environment["PGPORT"] = cs.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        psi.Environment["PGUSER"] = cs.Username;
        psi.Environment["PGPASSWORD"] = cs.Password ?? "";
        psi.Environment["PGDATABASE"] = cs.Database;
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start psql");
        await process.StandardInput.WriteAsync(sql);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"psql exited {process.ExitCode}: {stderr}");
        return await stdout;
    }

    [GeneratedRegex(@"embeddings_v\d")]
    private static partial Regex VersionTable();
}
