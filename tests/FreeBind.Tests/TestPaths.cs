namespace FreeBind.Tests;

/// <summary>
/// Where the test data lives. scripts/test.sh generates it (models, expected outputs) before
/// `dotnet test`; a missing folder is a loud failure, never a skip.
/// </summary>
internal static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>Generated data: $FREEBIND_TESTDATA or .work/testdata.</summary>
    public static string TestData { get; } =
        Environment.GetEnvironmentVariable("FREEBIND_TESTDATA") is { Length: > 0 } d ? d : Path.Combine(RepoRoot, ".work", "testdata");

    /// <summary>The read-only shared folder beside the checkout (sample media, BPE vocabulary).</summary>
    public static string Shared { get; } =
        Environment.GetEnvironmentVariable("FREEBIND_SHARED") is { Length: > 0 } s ? s : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    public static string Media => Path.Combine(Shared, "media", "freebind-samples");

    public static string ClipVocab => Path.Combine(Shared, "vocab", "bpe_simple_vocab_16e6.txt.gz");

    /// <summary>A generated folder or file under <see cref="TestData"/>; fails with the command that makes it.</summary>
    public static string Data(params string[] parts)
    {
        var path = Path.Combine([TestData, .. parts]);
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new InvalidOperationException($"test data '{path}' is missing: run scripts/test.sh (it generates the models and expected outputs first)");
        return path;
    }

    /// <summary>A committed fixture under tests/fixtures (data produced by upstream code at a pinned commit).</summary>
    public static string Fixture(params string[] parts)
    {
        var path = Path.Combine([RepoRoot, "tests", "fixtures", .. parts]);
        if (!File.Exists(path))
            throw new InvalidOperationException($"fixture '{path}' is missing from the checkout");
        return path;
    }

    public static string Sample(string fileName)
    {
        var path = Path.Combine(Media, fileName);
        if (!File.Exists(path))
            throw new InvalidOperationException($"sample media '{path}' is missing: the shared folder must sit beside the checkout (or set FREEBIND_SHARED)");
        return path;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FreeBind.Pipeline.sln")))
                return dir.FullName;
        throw new InvalidOperationException("cannot find FreeBind.Pipeline.sln above " + AppContext.BaseDirectory);
    }
}
