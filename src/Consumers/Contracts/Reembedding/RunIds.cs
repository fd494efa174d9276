using System.Security.Cryptography;

namespace FreeBind.Consumers.Contracts.Reembedding;

/// <summary>Run ids derived from the business key (space, target version): the same change is always the same run.</summary>
public static class RunIds
{
    /// <summary>A name-based (version 5 style, SHA-1) UUID of <c>space@digest</c>.</summary>
    /// <param name="space">Space name.</param>
    /// <param name="targetDigest">The version the run builds.</param>
    public static Guid For(string space, string targetDigest)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(space);
        ArgumentException.ThrowIfNullOrWhiteSpace(targetDigest);
        Span<byte> hash = stackalloc byte[20];
#pragma warning disable CA5350 // SHA-1 names a UUID (RFC 9562 §5.5); nothing secret depends on it
        SHA1.HashData(System.Text.Encoding.UTF8.GetBytes("freebind-reembedding-run\n" + space + "@" + targetDigest), hash);
#pragma warning restore CA5350
        hash[6] = (byte)((hash[6] & 0x0F) | 0x50);
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        return new Guid(hash[..16], bigEndian: true);
    }
}
