using FreeBind.Consumers.Contracts;
using FreeBind.Consumers.Pipeline.Content;
using Microsoft.Extensions.Options;

namespace FreeBind.Tests.Pipeline;

/// <summary>
/// The content policy on a real file system: only regular files whose real location is inside an
/// allowed root are read, never more than the cap, and "missing" and "not allowed" give the same
/// answer. Each case builds its own folders under a fresh temporary directory.
/// </summary>
public sealed class ContentPolicyTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("freebind-policy-");
    private readonly string _root;
    private readonly string _outside;

    public ContentPolicyTests()
    {
        _root = Directory.CreateDirectory(Path.Combine(_dir.FullName, "media")).FullName;
        _outside = Directory.CreateDirectory(Path.Combine(_dir.FullName, "secrets")).FullName;
        File.WriteAllText(Path.Combine(_root, "ok.txt"), "inside");
        File.WriteAllText(Path.Combine(_outside, "key.txt"), "outside");
    }

    private ContentResolver Resolver(long maxFetchBytes = 1024) => new(Options.Create(new ContentOptions
    {
        AllowedFileRoots = [_root],
        MaxFetchBytes = maxFetchBytes,
    }), new SocketsHttpHandler());

    private static MediaSource.Link Link(string path) => new(new Uri(path));

    private async Task<RejectedException> RefusedAsync(string path, long maxFetchBytes = 1024) =>
        await Assert.ThrowsAsync<RejectedException>(() => Resolver(maxFetchBytes).ResolveAsync(Link(path), CancellationToken.None));

    [Fact]
    public async Task A_regular_file_inside_the_root_is_read_and_a_link_that_stays_inside_is_followed()
    {
        File.CreateSymbolicLink(Path.Combine(_root, "alias.txt"), Path.Combine(_root, "ok.txt"));

        Assert.Equal("inside"u8.ToArray(), await Resolver().ResolveAsync(Link(Path.Combine(_root, "ok.txt")), CancellationToken.None));
        Assert.Equal("inside"u8.ToArray(), await Resolver().ResolveAsync(Link(Path.Combine(_root, "alias.txt")), CancellationToken.None));
    }

    [Fact]
    public async Task A_sibling_folder_whose_name_starts_with_the_root_is_outside()
    {
        var sibling = Directory.CreateDirectory(_root + "-evil").FullName;
        File.WriteAllText(Path.Combine(sibling, "x.txt"), "sibling");

        var e = await RefusedAsync(Path.Combine(sibling, "x.txt"));
        Assert.Equal(ErrorClasses.ForbiddenUri, e.ErrorClass);
    }

    [Fact]
    public async Task A_symlinked_file_pointing_outside_is_refused()
    {
        File.CreateSymbolicLink(Path.Combine(_root, "leak.txt"), Path.Combine(_outside, "key.txt"));

        Assert.Equal(ErrorClasses.ForbiddenUri, (await RefusedAsync(Path.Combine(_root, "leak.txt"))).ErrorClass);
    }

    [Fact]
    public async Task A_symlinked_folder_in_the_middle_of_the_path_pointing_outside_is_refused()
    {
        var nested = Directory.CreateDirectory(Path.Combine(_root, "albums")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(nested, "shared"), _outside);

        Assert.Equal(ErrorClasses.ForbiddenUri, (await RefusedAsync(Path.Combine(nested, "shared", "key.txt"))).ErrorClass);
    }

    [Fact]
    public async Task A_device_reached_through_a_link_is_refused_without_being_read()
    {
        File.CreateSymbolicLink(Path.Combine(_root, "zero.bin"), "/dev/zero");

        // /dev/zero would be read until memory runs out if it were followed.
        Assert.Equal(ErrorClasses.ForbiddenUri, (await RefusedAsync(Path.Combine(_root, "zero.bin"), maxFetchBytes: long.MaxValue / 2)).ErrorClass);
    }

    [Fact]
    public async Task A_fifo_inside_the_root_is_refused_without_blocking()
    {
        var fifo = Path.Combine(_root, "pipe");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo])!)
            await mkfifo.WaitForExitAsync();
        Assert.True(File.Exists(fifo), "mkfifo did not create the FIFO");

        // A blocking open would wait for a writer for ever; the deadline proves it does not.
        var refused = RefusedAsync(fifo);
        Assert.Same(refused, await Task.WhenAny(refused, Task.Delay(TimeSpan.FromSeconds(10))));
        Assert.Equal(ErrorClasses.ForbiddenUri, (await refused).ErrorClass);
    }

    [Fact]
    public async Task A_folder_is_not_a_file()
    {
        Assert.Equal(ErrorClasses.ForbiddenUri, (await RefusedAsync(_root)).ErrorClass);
    }

    [Fact]
    public async Task Missing_and_not_allowed_are_one_answer()
    {
        var missing = await RefusedAsync(Path.Combine(_root, "nope.txt"));
        var outside = await RefusedAsync(Path.Combine(_outside, "key.txt"));

        Assert.Equal(missing.ErrorClass, outside.ErrorClass);
        Assert.Equal(missing.Message.Replace(Path.Combine(_root, "nope.txt"), "PATH", StringComparison.Ordinal),
            outside.Message.Replace(Path.Combine(_outside, "key.txt"), "PATH", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_file_over_the_cap_is_refused_before_it_is_read()
    {
        File.WriteAllBytes(Path.Combine(_root, "big.bin"), new byte[5000]);

        Assert.Equal(ErrorClasses.Oversize, (await RefusedAsync(Path.Combine(_root, "big.bin"), maxFetchBytes: 4096)).ErrorClass);
    }

    [Fact]
    public async Task A_file_that_grows_while_it_is_read_is_never_read_past_the_cap()
    {
        const int cap = 2 * 1024 * 1024;
        var path = Path.Combine(_root, "growing.bin");
        File.WriteAllBytes(path, new byte[cap]);
        var resolver = Resolver(cap);
        // Warm up (JIT, the roots' resolution, the page cache): the first read is not slower than the rest.
        Assert.Equal(cap, (await resolver.ResolveAsync(Link(path), CancellationToken.None)).Length);

        // The writer flips the file between exactly the cap and 8 MB past it as fast as it can (a
        // length change is one system call, the new bytes a hole), so a read that found it at the cap
        // when it opened it sees it grow before it reaches the end: a reader that checks the size
        // and then reads to the end returns more than the cap. Reads run until both outcomes were
        // seen many times (never on a time budget alone: the machine may be loaded).
        using var stop = new CancellationTokenSource();
        var flips = 0L;
        var writer = Task.Factory.StartNew(() =>
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
            while (!stop.IsCancellationRequested)
            {
                stream.SetLength(cap + 8L * 1024 * 1024);
                stream.SetLength(cap);
                flips++;
            }
        }, TaskCreationOptions.LongRunning);
        var (returned, refused, largest) = (0, 0, 0L);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            while ((returned < 200 || refused < 200 || watch.Elapsed < TimeSpan.FromSeconds(2)) && watch.Elapsed < TimeSpan.FromMinutes(1))
            {
                try
                {
                    var bytes = await resolver.ResolveAsync(Link(path), CancellationToken.None);
                    returned++;
                    largest = Math.Max(largest, bytes.Length);
                    Assert.True(bytes.Length <= cap, $"a read returned {bytes.Length} bytes with a cap of {cap} (read {returned}, {refused} refused, {flips} flips)");
                }
                catch (RejectedException e) when (e.ErrorClass == ErrorClasses.Oversize)
                {
                    refused++;
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
            await writer;
        }
        Assert.True(returned >= 200 && refused >= 200, $"in {watch.Elapsed.TotalSeconds:F0} s the file was read {returned} times under the cap and refused {refused} times over it ({flips} flips)");
    }

    [Fact]
    public async Task A_file_uri_with_a_host_is_refused()
    {
        var e = await Assert.ThrowsAsync<RejectedException>(() =>
            Resolver().ResolveAsync(new MediaSource.Link(new Uri("file://fileserver" + Path.Combine(_root, "ok.txt"))), CancellationToken.None));
        Assert.Equal(ErrorClasses.ForbiddenUri, e.ErrorClass);
    }

    public void Dispose() => _dir.Delete(recursive: true);
}
