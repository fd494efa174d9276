using FreeBind.Persistence.Reembedding;
using FreeBind.Persistence.Search;
using FreeBind.Persistence.Spaces;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace FreeBind.Tests.Persistence.Versions;

/// <summary>The version services on a test database, and the steps that take a version through its gate.</summary>
internal static class VersionTestSteps
{
    public static SpaceVersionLifecycle Lifecycle(this TestDatabase db, TimeSpan? retention = null) =>
        new(db.DataSource, Options.Create(new SpaceVersionOptions { Retention = retention ?? TimeSpan.FromDays(7) }), NullLogger<SpaceVersionLifecycle>.Instance);

    public static SpaceIndexBuilder IndexBuilder(this TestDatabase db) =>
        new(db.DataSource, Options.Create(new SpaceVersionOptions { IndexBuildMemoryMb = 256 }), NullLogger<SpaceIndexBuilder>.Instance);

    public static VectorSearch Search(this TestDatabase db) => new(db.DataSource);

    public static VerificationStore Verifications(this TestDatabase db) => new(db.DataSource);

    /// <summary>A report whose every check passed (what the saga stores after a good gate).</summary>
    public static VerifyReport PassingReport(Guid runId, SpaceVersion version, int? baseline = null) =>
        new(runId, version.Id, baseline, new CoverageReport(0, 0, 0, 0, []), new RecallReport(0, 10, null, null, 0.95), new SampleCheck(0, 0, 0), []);

    /// <summary>Index, a passed verification, ready: what a run does before its cut-over.</summary>
    public static async Task<SpaceVersion> MakeReadyAsync(this TestDatabase db, SpaceVersion version)
    {
        await db.IndexBuilder().BuildAsync(version);
        var run = Guid.NewGuid();
        Assert.True(await db.Verifications().SaveAsync(PassingReport(run, version)));
        return (await db.Lifecycle().MarkReadyAsync(version, run)).Version;
    }

    /// <summary>Runs one statement.</summary>
    public static async Task ExecuteAsync(this TestDatabase db, string sql)
    {
        await using var cmd = db.DataSource.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>Whether a relation exists.</summary>
    public static async Task<bool> TableExistsAsync(this TestDatabase db, string table) =>
        await db.ScalarAsync<bool>("SELECT to_regclass($1) IS NOT NULL", "\"" + table + "\"");
}
