using System.Security.Cryptography;
using FreeBind.Encoding.Spaces;

namespace FreeBind.Tests.Spaces;

/// <summary>Files older than the racy window, made once for the class (a fresh file is never recorded).</summary>
public sealed class SettledFiles : IAsyncLifetime
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("freebind-digests-").FullName;

    /// <summary>A settled file of its own for each test (tests change them).</summary>
    public string File(string name) => Path.Combine(Folder, name);

    public async Task InitializeAsync()
    {
        var random = new Random(7);
        foreach (var name in new[] { "reused", "in-place", "replaced", "corrupt", "unwritable", "sibling" })
        {
            var bytes = new byte[1 << 20];
            random.NextBytes(bytes);
            await System.IO.File.WriteAllBytesAsync(File(name), bytes);
        }
        await Task.Delay(FileDigestCache.RacyWindow + TimeSpan.FromMilliseconds(300));
    }

    public Task DisposeAsync()
    {
        Directory.Delete(Folder, recursive: true);
        return Task.CompletedTask;
    }
}

/// <summary>
/// File digests are computed once and reused across processes while the file is unchanged, and
/// never trusted for a changed file, however it was changed. Two cache instances on one folder
/// stand for two processes.
/// </summary>
public sealed class FileDigestCacheTests(SettledFiles files) : IClassFixture<SettledFiles>, IDisposable
{
    private readonly string _cache = Path.Combine(Directory.CreateTempSubdirectory("freebind-digest-cache-").FullName, "digests");

    public void Dispose() => Directory.Delete(Path.GetDirectoryName(_cache)!, recursive: true);

    private static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public void Another_process_reuses_a_digest_without_reading_the_file()
    {
        var file = files.File("reused");
        var first = new FileDigestCache(_cache);
        Assert.Equal(Sha256(file), first.Digest(file));
        Assert.Equal(1 << 20, first.BytesHashed);

        var second = new FileDigestCache(_cache);
        Assert.Equal(Sha256(file), second.Digest(file));
        Assert.Equal(0, second.BytesHashed);
        Assert.Equal(1, second.FilesReused);
        Assert.Null(second.WriteError);
    }

    [Fact]
    public void A_file_changed_in_place_with_its_size_and_modification_time_restored_is_hashed_again()
    {
        var file = files.File("in-place");
        var before = new FileDigestCache(_cache).Digest(file);
        var modified = File.GetLastWriteTimeUtc(file);
        using (var stream = new FileStream(file, FileMode.Open, FileAccess.Write))
        {
            stream.Position = 4096;
            stream.WriteByte(0x5A);
        }
        File.SetLastWriteTimeUtc(file, modified); // what `touch -d` or a careless copy tool does

        var after = new FileDigestCache(_cache);
        Assert.Equal(Sha256(file), after.Digest(file));
        Assert.NotEqual(before, Sha256(file));
        Assert.Equal(1 << 20, after.BytesHashed);
    }

    [Fact]
    public void A_file_replaced_by_another_of_the_same_size_and_time_is_hashed_again()
    {
        var file = files.File("replaced");
        var before = new FileDigestCache(_cache).Digest(file);
        var other = file + ".new";
        var bytes = File.ReadAllBytes(file);
        bytes[100] ^= 0xFF;
        File.WriteAllBytes(other, bytes);
        File.SetLastWriteTimeUtc(other, File.GetLastWriteTimeUtc(file));
        File.Move(other, file, overwrite: true); // a new inode under the same path

        var after = new FileDigestCache(_cache);
        var digest = after.Digest(file);
        Assert.NotEqual(before, digest);
        Assert.Equal(Sha256(file), digest);
        Assert.Equal(1 << 20, after.BytesHashed);
    }

    [Fact]
    public void A_damaged_cache_entry_reads_as_a_miss()
    {
        var file = files.File("corrupt");
        new FileDigestCache(_cache).Digest(file);
        foreach (var entry in Directory.GetFiles(_cache)) File.WriteAllText(entry, "freebind-digest/1 1 2 3");
        var after = new FileDigestCache(_cache);
        Assert.Equal(Sha256(file), after.Digest(file));
        Assert.Equal(1 << 20, after.BytesHashed);
    }

    [Fact]
    public void An_entry_of_another_file_is_never_taken_for_this_one()
    {
        // Entries are keyed by path; copying one over another path's entry must not transfer the digest.
        var file = files.File("sibling");
        var reused = files.File("reused");
        var cache = new FileDigestCache(_cache);
        cache.Digest(file);
        cache.Digest(reused);
        var entries = Directory.GetFiles(_cache);
        Assert.Equal(2, entries.Length);
        var text = entries.Select(File.ReadAllText).ToList();
        File.WriteAllText(entries[0], text[1]);
        File.WriteAllText(entries[1], text[0]);
        var after = new FileDigestCache(_cache);
        Assert.Equal(Sha256(file), after.Digest(file));
        Assert.Equal(Sha256(reused), after.Digest(reused));
        Assert.Equal(2 << 20, after.BytesHashed);
    }

    [Fact]
    public void A_file_written_moments_ago_is_not_recorded()
    {
        var fresh = Path.Combine(Path.GetDirectoryName(_cache)!, "fresh.bin");
        File.WriteAllBytes(fresh, new byte[1000]);
        var first = new FileDigestCache(_cache);
        Assert.Equal(Sha256(fresh), first.Digest(fresh));
        Assert.False(Directory.Exists(_cache) && Directory.GetFiles(_cache).Length > 0, "a file written within the racy window must not be recorded");
        var second = new FileDigestCache(_cache);
        second.Digest(fresh);
        Assert.Equal(1000, second.BytesHashed);
    }

    [Fact]
    public void An_unwritable_cache_folder_costs_speed_not_correctness()
    {
        File.WriteAllText(_cache, "a file where the folder should be");
        var file = files.File("unwritable");
        var cache = new FileDigestCache(_cache);
        Assert.Equal(Sha256(file), cache.Digest(file));
        Assert.StartsWith($"cannot write the file digest cache in '{_cache}'", cache.WriteError);
        Assert.Equal(Sha256(file), cache.Digest(file)); // still served in this process
        Assert.Equal(1 << 20, cache.BytesHashed);
    }
}
