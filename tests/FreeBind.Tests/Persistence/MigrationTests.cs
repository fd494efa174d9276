using FreeBind.Persistence.Migrations;

namespace FreeBind.Tests.Persistence;

public sealed class MigrationTests
{
    [Fact]
    public async Task Applying_twice_applies_nothing_the_second_time()
    {
        await using var db = await TestDatabase.CreateAsync(migrate: false);

        var first = await db.Migrator().ApplyAsync();
        var second = await db.Migrator().ApplyAsync();

        Assert.Equal(MigrationRunner.Embedded.Select(m => m.Version), first);
        Assert.Empty(second);
        Assert.Equal(MigrationRunner.Embedded.Count, (int)await db.ScalarAsync<long>("SELECT count(*) FROM schema_migrations"));
        Assert.Equal("0.8.0", await db.ScalarAsync<string>("SELECT extversion FROM pg_extension WHERE extname = 'vector'"));
    }

    [Fact]
    public async Task Concurrent_runners_apply_each_migration_once()
    {
        await using var db = await TestDatabase.CreateAsync(migrate: false);

        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => db.Migrator().ApplyAsync())));

        Assert.Equal(MigrationRunner.Embedded.Count, results.Sum(r => r.Count));
        Assert.Single(results, r => r.Count > 0);
    }

    [Fact]
    public async Task An_edited_applied_migration_is_refused()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using (var cmd = db.DataSource.CreateCommand("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1"))
            await cmd.ExecuteNonQueryAsync();

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => db.Migrator().ApplyAsync());
        Assert.Contains("changed after it was applied", ex.Message);
    }
}
