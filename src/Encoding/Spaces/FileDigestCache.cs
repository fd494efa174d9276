using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;

namespace FreeBind.Encoding.Spaces;

/// <summary>
/// SHA-256 of files, computed once and reused while the file is unchanged: in this process, and
/// (with a <see cref="Directory"/>) across processes. An entry is trusted only while the file's
/// device, inode, size, modification and change times all equal those recorded when it was
/// hashed; a file modified during hashing, or within <see cref="RacyWindow"/> of it (a write in
/// the same timestamp tick would be invisible), is hashed again next time rather than recorded.
/// </summary>
public sealed class FileDigestCache
{
    /// <summary>Writes closer than this to the hash are not trusted to show in the timestamps (coarse-grained filesystems).</summary>
    public static readonly TimeSpan RacyWindow = TimeSpan.FromSeconds(2);

    private const string Format = "freebind-digest/1";
    private readonly ConcurrentDictionary<string, (FileIdentity Identity, string Digest)> _memory = new(StringComparer.Ordinal);
    private long _bytesHashed, _hashed, _reused;

    /// <param name="directory">Folder of the cross-process entries (created private to the user); null keeps digests in this process only.</param>
    public FileDigestCache(string? directory = null)
    {
        Directory = string.IsNullOrWhiteSpace(directory) ? null : Path.GetFullPath(directory);
    }

    /// <summary>The cache of a process that configured none: in memory only.</summary>
    public static FileDigestCache InProcess { get; } = new();

    /// <summary>Folder of the cross-process entries, or null.</summary>
    public string? Directory { get; }

    /// <summary>Bytes read to compute digests so far (what a start costs when the cache misses).</summary>
    public long BytesHashed => Interlocked.Read(ref _bytesHashed);

    /// <summary>Files hashed so far.</summary>
    public long FilesHashed => Interlocked.Read(ref _hashed);

    /// <summary>Digests served without reading the file (unchanged since it was hashed, here or by another process).</summary>
    public long FilesReused => Interlocked.Read(ref _reused);

    /// <summary>The first failure to record an entry (an unwritable cache folder), for the caller to report; digests stay correct.</summary>
    public string? WriteError { get; private set; }

    /// <summary>Lower-case hex SHA-256 of the file at <paramref name="path"/>.</summary>
    public string Digest(string path)
    {
        var full = Path.GetFullPath(path);
        var identity = FileIdentity.Of(full);
        if (identity is null) return Hash(full); // no reliable identity: never trust a cached digest
        if (_memory.TryGetValue(full, out var known) && known.Identity == identity)
        {
            Interlocked.Increment(ref _reused);
            return known.Digest;
        }
        if (ReadEntry(full, identity.Value) is { } stored)
        {
            _memory[full] = (identity.Value, stored);
            Interlocked.Increment(ref _reused);
            return stored;
        }
        var started = DateTime.UtcNow;
        var digest = Hash(full);
        // Recorded only if nothing touched the file while it was read, and not so recently that a
        // later write in the same timestamp tick could go unseen.
        if (FileIdentity.Of(full) == identity && TimeSpan.FromTicks((started.Ticks - DateTime.UnixEpoch.Ticks) - identity.Value.LatestNs / 100) > RacyWindow)
        {
            _memory[full] = (identity.Value, digest);
            WriteEntry(full, identity.Value, digest);
        }
        return digest;
    }

    private string Hash(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        var digest = Convert.ToHexStringLower(SHA256.HashData(stream));
        Interlocked.Add(ref _bytesHashed, stream.Position);
        Interlocked.Increment(ref _hashed);
        return digest;
    }

    private string EntryPath(string fullPath) =>
        Path.Combine(Directory!, Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(fullPath)))[..40]);

    private static string Line(string fullPath, FileIdentity id, string digest) => string.Join(' ',
        Format, id.Device.ToString(CultureInfo.InvariantCulture), id.Inode.ToString(CultureInfo.InvariantCulture),
        id.Size.ToString(CultureInfo.InvariantCulture), id.ModifiedNs.ToString(CultureInfo.InvariantCulture),
        id.ChangedNs.ToString(CultureInfo.InvariantCulture), digest) + " " + fullPath;

    private string? ReadEntry(string fullPath, FileIdentity identity)
    {
        if (Directory is null) return null;
        string text;
        try
        {
            text = File.ReadAllText(EntryPath(fullPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // no entry yet (or unreadable): hash
        }
        // The whole line must match what this file would record, path included (a hash-prefix collision or a torn write reads as a miss).
        var space = text.LastIndexOf(' ', Math.Max(0, text.Length - fullPath.Length - 1));
        if (space < 0) return null;
        var head = text[..space].Split(' ');
        if (head.Length != 7) return null;
        var digest = head[6];
        return digest.Length == 64 && text == Line(fullPath, identity, digest) ? digest : null;
    }

    private void WriteEntry(string fullPath, FileIdentity identity, string digest)
    {
        if (Directory is null) return;
        try
        {
            if (!System.IO.Directory.Exists(Directory))
            {
                if (OperatingSystem.IsWindows()) System.IO.Directory.CreateDirectory(Directory);
                else System.IO.Directory.CreateDirectory(Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            var target = EntryPath(fullPath);
            var temp = target + "." + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "." + Guid.NewGuid().ToString("N")[..8];
            File.WriteAllText(temp, Line(fullPath, identity, digest));
            File.Move(temp, target, overwrite: true); // atomic: readers see the old entry or the new one
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            WriteError ??= $"cannot write the file digest cache in '{Directory}': {e.Message}";
        }
    }
}
