using System.Net;

namespace FreeBind.Consumers.Ingestion;

/// <summary>
/// Fetches the bytes of an event's source under the configured policy: <c>file://</c> only inside
/// allowed roots, <c>http(s)://</c> only to allowed hosts, with a timeout and a byte cap.
/// </summary>
public sealed class ContentResolver(IngestionOptions options, HttpClient http)
{
    private readonly string[] _roots = options.AllowedFileRoots
        .Select(r => Path.TrimEndingDirectorySeparator(Path.GetFullPath(r)) + Path.DirectorySeparatorChar).ToArray();

    public async Task<byte[]> ResolveAsync(MediaSource source, CancellationToken cancellationToken)
    {
        switch (source)
        {
            case MediaSource.Text text:
                return System.Text.Encoding.UTF8.GetBytes(text.Value);
            case MediaSource.Inline inline:
                return inline.Bytes;
            case MediaSource.Link { Uri: { Scheme: "file" } uri }:
                return await ReadFileAsync(uri, cancellationToken);
            case MediaSource.Link { Uri: { Scheme: "http" or "https" } uri }:
                return await FetchAsync(uri, cancellationToken);
            case MediaSource.Link link:
                throw new PoisonException(PoisonException.ForbiddenUri, $"uri scheme '{link.Uri.Scheme}' is not allowed (file or http(s) only)");
            default:
                throw new InvalidOperationException("unknown media source");
        }
    }

    private async Task<byte[]> ReadFileAsync(Uri uri, CancellationToken cancellationToken)
    {
        var path = Path.GetFullPath(uri.LocalPath);
        // Resolve symlinks so a link inside a root cannot point outside it.
        var target = File.Exists(path) ? new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path : path;
        if (!_roots.Any(root => target.StartsWith(root, StringComparison.Ordinal)))
            throw new PoisonException(PoisonException.ForbiddenUri, $"file '{path}' is outside the allowed roots (Kafka:AllowedFileRoots)");
        try
        {
            var info = new FileInfo(target);
            if (info.Length > options.MaxFetchBytes)
                throw new PoisonException(PoisonException.Oversize, $"file '{path}' is larger than {options.MaxFetchBytes} bytes");
            return await File.ReadAllBytesAsync(target, cancellationToken);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            throw new PoisonException(PoisonException.FetchFailed, $"cannot read '{path}': {e.Message}", e);
        }
    }

    private async Task<byte[]> FetchAsync(Uri uri, CancellationToken cancellationToken)
    {
        if (!options.AllowedHttpHosts.Contains(uri.Host, StringComparer.OrdinalIgnoreCase))
            throw new PoisonException(PoisonException.ForbiddenUri, $"host '{uri.Host}' is not allowed (Kafka:AllowedHttpHosts)");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.FetchTimeoutMs);
        try
        {
            using var response = await http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Gone or HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized)
                throw new PoisonException(PoisonException.FetchFailed, $"GET {uri} answered {(int)response.StatusCode}");
            response.EnsureSuccessStatusCode();
            if (response.Content.Headers.ContentLength > options.MaxFetchBytes)
                throw new PoisonException(PoisonException.Oversize, $"{uri} is larger than {options.MaxFetchBytes} bytes");
            await using var stream = await response.Content.ReadAsStreamAsync(timeout.Token);
            using var buffer = new MemoryStream();
            var chunk = new byte[81920];
            int read;
            while ((read = await stream.ReadAsync(chunk, timeout.Token)) > 0)
            {
                if (buffer.Length + read > options.MaxFetchBytes)
                    throw new PoisonException(PoisonException.Oversize, $"{uri} is larger than {options.MaxFetchBytes} bytes");
                buffer.Write(chunk, 0, read);
            }
            return buffer.ToArray();
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"GET {uri} took longer than {options.FetchTimeoutMs} ms");
        }
    }
}
