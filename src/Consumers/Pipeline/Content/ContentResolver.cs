using System.Net;
using FreeBind.Consumers.Contracts;
using Microsoft.Extensions.Options;

namespace FreeBind.Consumers.Pipeline.Content;

/// <summary>
/// Fetches the bytes of an event's source under the content policy (<see cref="ContentOptions"/>):
/// <c>file://</c> only for regular files inside the allowed roots (see <see cref="ConfinedFile"/>),
/// <c>http(s)://</c> only to allowed hosts without redirects, each with a timeout and a byte cap.
/// </summary>
public sealed class ContentResolver(IOptions<ContentOptions> options, HttpMessageHandler httpHandler)
{
    private readonly ContentOptions _options = options.Value;
    private readonly HttpClient _http = new(httpHandler, disposeHandler: false) { Timeout = Timeout.InfiniteTimeSpan };
    private IReadOnlyList<string>? _roots;

    /// <summary>The content bytes of <paramref name="source"/>.</summary>
    /// <exception cref="RejectedException">Not allowed, missing or too large.</exception>
    /// <exception cref="TimeoutException">A remote source did not answer in time (worth retrying).</exception>
    /// <exception cref="HttpRequestException">A remote source failed (5xx, connection: worth retrying).</exception>
    public async Task<byte[]> ResolveAsync(MediaSource source, CancellationToken cancellationToken) => source switch
    {
        MediaSource.Text text => System.Text.Encoding.UTF8.GetBytes(text.Value),
        MediaSource.Inline inline => inline.Bytes,
        MediaSource.Link { Uri.Scheme: "file" } link => ReadFile(link.Uri),
        MediaSource.Link { Uri.Scheme: "http" or "https" } link => await FetchAsync(link.Uri, cancellationToken),
        MediaSource.Link link => throw new RejectedException(ErrorClasses.ForbiddenUri, $"uri scheme '{link.Uri.Scheme}' is not allowed (file or http(s) only)"),
        _ => throw new ArgumentOutOfRangeException(nameof(source), source, "unknown media source"),
    };

    private byte[] ReadFile(Uri uri)
    {
        // Roots are resolved on first use, not at start: a root may be mounted after the worker starts.
        var roots = _roots ??= ConfinedFile.ResolveRoots(_options.AllowedFileRoots);
        var path = uri.LocalPath;
        var (bytes, refusal) = uri.IsUnc || (uri.Host.Length > 0 && uri.Host != "localhost")
            ? (null, ConfinedFile.Refusal.NotReadable)
            : ConfinedFile.Read(path, roots, _options.MaxFetchBytes);
        return bytes ?? throw (refusal == ConfinedFile.Refusal.TooLarge
            ? new RejectedException(ErrorClasses.Oversize, $"file '{path}' is larger than {_options.MaxFetchBytes} bytes (Content:MaxFetchBytes)")
            // One answer for missing, unreadable, not a regular file and outside the roots: a producer cannot probe the disk.
            : new RejectedException(ErrorClasses.ForbiddenUri, $"file '{path}' cannot be read: it is missing, not a regular file, or outside Content:AllowedFileRoots"));
    }

    private async Task<byte[]> FetchAsync(Uri uri, CancellationToken cancellationToken)
    {
        if (!_options.AllowedHttpHosts.Contains(uri.Host, StringComparer.OrdinalIgnoreCase))
            throw new RejectedException(ErrorClasses.ForbiddenUri, $"host '{uri.Host}' is not allowed (Content:AllowedHttpHosts)");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.FetchTimeoutMs);
        try
        {
            using var response = await _http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Gone or HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized
                || (int)response.StatusCode is >= 300 and < 400)
                throw new RejectedException(ErrorClasses.FetchFailed, $"GET {uri} answered {(int)response.StatusCode}");
            response.EnsureSuccessStatusCode();
            if (response.Content.Headers.ContentLength > _options.MaxFetchBytes)
                throw new RejectedException(ErrorClasses.Oversize, $"{uri} is larger than {_options.MaxFetchBytes} bytes (Content:MaxFetchBytes)");
            await using var stream = await response.Content.ReadAsStreamAsync(timeout.Token);
            using var buffer = new MemoryStream();
            var chunk = new byte[81920];
            int read;
            while ((read = await stream.ReadAsync(chunk, timeout.Token)) > 0)
            {
                if (buffer.Length + read > _options.MaxFetchBytes)
                    throw new RejectedException(ErrorClasses.Oversize, $"{uri} is larger than {_options.MaxFetchBytes} bytes (Content:MaxFetchBytes)");
                buffer.Write(chunk, 0, read);
            }
            return buffer.ToArray();
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"GET {uri} took longer than {_options.FetchTimeoutMs} ms");
        }
    }
}
