using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace FreeBind.Consumers.Pipeline.Content;

/// <summary>
/// Reads a file only when it is a regular file whose real location (every symlink of every path
/// component resolved) lies inside one of the allowed roots, and never more than a cap. Linux only.
/// </summary>
/// <remarks>
/// The path is resolved with <c>realpath</c> and checked against the roots (also resolved) before
/// anything is opened, so no device or FIFO outside the roots is ever touched; the file is then
/// opened non-blocking (a FIFO cannot stall the open), checked to be a regular file on the open
/// descriptor, and its location checked again through <c>/proc/self/fd</c>, so a path swapped
/// between the check and the open is caught. The read stops one byte past the cap, so a file that
/// grows while it is read is refused, not followed.
/// </remarks>
internal static unsafe partial class ConfinedFile
{
    /// <summary>Why a read was refused.</summary>
    public enum Refusal
    {
        /// <summary>Missing, unreadable, not a regular file, or outside the roots (one answer on purpose).</summary>
        NotReadable,

        /// <summary>Larger than the cap.</summary>
        TooLarge,
    }

    /// <summary>The file's bytes, or the reason it is refused.</summary>
    /// <param name="path">An absolute path (from a <c>file://</c> URI).</param>
    /// <param name="roots">Allowed folders.</param>
    /// <param name="maxBytes">Largest content read.</param>
    public static (byte[]? Bytes, Refusal Refusal) Read(string path, IReadOnlyList<string> roots, long maxBytes)
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("file:// sources are supported on Linux only");
        if (path.Contains('\0') || RealPath(path) is not { } real || !Inside(real, roots) || !IsRegular(real, out _))
            return (null, Refusal.NotReadable);

        var fd = Native.open(real, ORdOnly | ONonBlock | OCloexec | ONoctty);
        if (fd < 0)
            return (null, Refusal.NotReadable);
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (!IsRegular(fd, out var size) || RealPath($"/proc/self/fd/{fd}") is not { } opened || !Inside(opened, roots))
            return (null, Refusal.NotReadable);
        if (size > maxBytes)
            return (null, Refusal.TooLarge);

        var buffer = new byte[(int)Math.Min(size, maxBytes) + 1];
        var total = 0;
        while (true)
        {
            if (total == buffer.Length)
            {
                if (total > maxBytes)
                    return (null, Refusal.TooLarge);
                Array.Resize(ref buffer, (int)Math.Min((long)buffer.Length * 2, maxBytes + 1));
            }
            var read = RandomAccess.Read(handle, buffer.AsSpan(total), total);
            if (read == 0)
                break;
            total += read;
        }
        return total > maxBytes ? (null, Refusal.TooLarge) : (buffer[..total], Refusal.NotReadable);
    }

    /// <summary>Roots resolved the way paths are, each ending in a separator (so <c>/data/media</c> never admits <c>/data/media-evil</c>).</summary>
    public static IReadOnlyList<string> ResolveRoots(IEnumerable<string> roots) =>
        [.. roots.Select(r => RealPath(Path.GetFullPath(r)) ?? Path.GetFullPath(r)).Select(r => Path.TrimEndingDirectorySeparator(r) + Path.DirectorySeparatorChar)];

    private static bool Inside(string realPath, IReadOnlyList<string> roots) =>
        roots.Any(root => realPath.StartsWith(root, StringComparison.Ordinal));

    private static string? RealPath(string path)
    {
        var resolved = Native.realpath(path, 0);
        if (resolved == 0)
            return null;
        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            Native.free(resolved);
        }
    }

    private static bool IsRegular(string path, out long size) => Stat(AtFdCwd, path, AtSymlinkNoFollow, out size);

    private static bool IsRegular(int fd, out long size) => Stat(fd, "", AtEmptyPath, out size);

    // struct statx has the same layout on every Linux architecture: stx_mode (u16) at 28, stx_size (u64) at 40.
    private static bool Stat(int dirFd, string path, int flags, out long size)
    {
        var buffer = stackalloc byte[256];
        size = 0;
        if (Native.statx(dirFd, path, flags, StatxType | StatxSize, buffer) != 0)
            return false;
        var mode = *(ushort*)(buffer + 28);
        size = (long)*(ulong*)(buffer + 40);
        return (mode & SIfmt) == SIfreg;
    }

    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxType = 0x1;
    private const uint StatxSize = 0x200;
    private const int SIfmt = 0xF000;
    private const int SIfreg = 0x8000;

    // Same values on x86-64 and AArch64 (asm-generic).
    private const int ORdOnly = 0;
    private const int ONoctty = 0x100;
    private const int ONonBlock = 0x800;
    private const int OCloexec = 0x80000;

    private static partial class Native
    {
        [LibraryImport("libc.so.6", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        public static partial nint realpath(string path, nint resolved);

        [LibraryImport("libc.so.6")]
        public static partial void free(nint pointer);

        [LibraryImport("libc.so.6", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        public static partial int statx(int dirFd, string path, int flags, uint mask, byte* buffer);

        [LibraryImport("libc.so.6", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        public static partial int open(string path, int flags);
    }
}
