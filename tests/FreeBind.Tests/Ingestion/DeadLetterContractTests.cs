using System.Globalization;

using Confluent.Kafka;
using FreeBind.Consumers.Contracts;

namespace FreeBind.Tests.Ingestion;

/// <summary>
/// The dead-letter contract of docs/events.md on a running worker: the copy is the original message
/// byte for byte with its own headers first, then every documented header with its exact value.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class DeadLetterContractTests
{
    [Fact]
    public async Task A_dead_letter_is_the_original_message_byte_for_byte_followed_by_every_documented_header()
    {
        await using var h = await IngestionHarness.StartAsync("imagebind");
        var worker = await h.StartWorkerAsync();
        const int partition = 2;
        // Good messages first, so the poison's offset is not its partition number (or 0, or 1).
        for (var i = 0; i < 5; i++)
            await h.ProduceBytesAsync(System.Text.Encoding.UTF8.GetBytes($"g{i}"),
                System.Text.Encoding.UTF8.GetBytes($$"""{"id":"g{{i}}","tenant":"acme","type":"upserted","modality":"text","text":"good {{i}}"}"""), partition: partition);
        byte[] key = [.. "p-video"u8];
        byte[] value = [.. """{"id":"p-video","tenant":"acme","type":"upserted","modality":"video","text":"x"}"""u8];
        var original = new Headers { { "trace-id", [1, 2, 3] }, { "trace-id", [4] }, { "empty", [] }, { "freebind.error.class", "spoofed"u8.ToArray() } };
        var before = DateTimeOffset.UtcNow.AddSeconds(-1);
        var delivered = await h.ProduceBytesAsync(key, value, original, partition);
        Assert.True(delivered.Offset.Value >= 5);

        await worker.Metrics.WaitForCompletedAsync(6, TimeSpan.FromMinutes(2));
        var after = DateTimeOffset.UtcNow.AddSeconds(1);
        var message = Assert.Single(h.ReadTopic<byte[]>(h.DeadLetterTopic, 1, TimeSpan.FromSeconds(30))).Message;

        Assert.Equal(key, message.Key);
        Assert.Equal(value, message.Value);
        var headers = message.Headers.Select(x => (x.Key, Value: x.GetValueBytes())).ToList();
        // The producer's headers first, unchanged, in order (repeats and empty values included).
        Assert.Equal(original.Select(x => (x.Key, x.GetValueBytes())), headers.Take(original.Count), new HeaderComparer());
        var added = headers.Skip(original.Count).Select(x => (x.Key, System.Text.Encoding.UTF8.GetString(x.Value))).ToList();
        var failedAt = added.Single(a => a.Key == DeadLetterHeaders.FailedAt).Item2;
        Assert.Equal(
        [
            (DeadLetterHeaders.ErrorClass, ErrorClasses.UnknownModality),
            (DeadLetterHeaders.ErrorMessage, "modality 'video' is not image, audio or text"),
            (DeadLetterHeaders.SourceTopic, h.Topic),
            (DeadLetterHeaders.SourcePartition, partition.ToString(CultureInfo.InvariantCulture)),
            (DeadLetterHeaders.SourceOffset, delivered.Offset.Value.ToString(CultureInfo.InvariantCulture)),
            (DeadLetterHeaders.Attempts, "1"),
            (DeadLetterHeaders.FailedAt, failedAt),
        ], added);
        var at = DateTimeOffset.ParseExact(failedAt, "yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
        Assert.InRange(at, before, after);
        // Read back, the last value of a repeated name wins: ours, not the producer's spoofed one.
        Assert.Equal(ErrorClasses.UnknownModality, DeadLetterHeaders.Read(headers).ErrorClass);
    }

    private sealed class HeaderComparer : IEqualityComparer<(string, byte[])>
    {
        public bool Equals((string, byte[]) x, (string, byte[]) y) => x.Item1 == y.Item1 && x.Item2.AsSpan().SequenceEqual(y.Item2);

        public int GetHashCode((string, byte[]) obj) => obj.Item1.GetHashCode(StringComparison.Ordinal);
    }
}
