using System.Runtime.InteropServices;

namespace FreeBind.Encoding.Spaces;

/// <summary>
/// What identifies a file's content without reading it: device, inode, size, modification and
/// change times (nanoseconds). The change time moves on every write and cannot be set back by a
/// user (unlike the modification time, which <c>touch -d</c> rewinds), so a file whose identity is
/// unchanged has not been written since.
/// </summary>
internal readonly partial record struct FileIdentity(ulong Device, ulong Inode, long Size, long ModifiedNs, long ChangedNs)
{
    /// <summary>The identity of the file <paramref name="path"/> points to (symlinks followed), or null where statx is unavailable.</summary>
    public static FileIdentity? Of(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        Span<byte> buffer = stackalloc byte[256];
        int rc;
        try
        {
            rc = Statx(AtFdCwd, path, 0, StatxBasicStats, ref MemoryMarshal.GetReference(buffer));
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null; // not glibc, or one without statx (< 2.28): digests are cached in-process only
        }
        if (rc != 0) return null;
        // struct statx (linux/stat.h) has the same layout on every architecture.
        var mask = BitConverter.ToUInt32(buffer[0..4]);
        if ((mask & (StatxIno | StatxSize | StatxMtime | StatxCtime)) != (StatxIno | StatxSize | StatxMtime | StatxCtime)) return null;
        var inode = BitConverter.ToUInt64(buffer[32..40]);
        var size = BitConverter.ToInt64(buffer[40..48]);
        var ctime = Nanoseconds(buffer[96..112]);
        var mtime = Nanoseconds(buffer[112..128]);
        var device = ((ulong)BitConverter.ToUInt32(buffer[136..140]) << 32) | BitConverter.ToUInt32(buffer[140..144]);
        return new FileIdentity(device, inode, size, mtime, ctime);
    }

    /// <summary>The later of the modification and change times.</summary>
    public long LatestNs => Math.Max(ModifiedNs, ChangedNs);

    private static long Nanoseconds(ReadOnlySpan<byte> timestamp) =>
        BitConverter.ToInt64(timestamp[0..8]) * 1_000_000_000L + BitConverter.ToUInt32(timestamp[8..12]);

    private const int AtFdCwd = -100;
    private const uint StatxBasicStats = 0x7FF;
    private const uint StatxMtime = 0x40, StatxCtime = 0x80, StatxIno = 0x100, StatxSize = 0x200;

    [LibraryImport("libc.so.6", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, ref byte buffer);
}
