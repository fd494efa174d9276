using System.Text.Encodings.Web;
using System.Text.Json;
using FreeBind.Encoding;

namespace FreeBind.Consumers.Cli;

/// <summary>
/// Writes the JSON lines <c>embed --output</c> and <c>fuse</c> produce: one line per item and
/// factor choice, <c>{"id","modality","space_version","preset"?,"vector","experts"?}</c>, text as
/// written (<c>+</c>, <c>'</c>, non-ASCII unescaped; only what JSON requires is escaped).
/// </summary>
internal sealed class VectorLines(Stream stream)
{
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly Utf8JsonWriter _writer = new(stream, Options);

    public int Written { get; private set; }

    public async Task WriteAsync(string id, Modality modality, string spaceVersion, string? preset, float[] vector,
        IReadOnlyDictionary<string, float[]>? atoms, CancellationToken cancellationToken)
    {
        _writer.WriteStartObject();
        _writer.WriteString("id", id);
        _writer.WriteString("modality", modality.ToName());
        _writer.WriteString("space_version", spaceVersion);
        if (preset is not null) _writer.WriteString("preset", preset);
        WriteArray("vector", vector);
        if (atoms is not null)
        {
            _writer.WriteStartObject("experts");
            foreach (var (expert, atom) in atoms) WriteArray(expert, atom);
            _writer.WriteEndObject();
        }
        _writer.WriteEndObject();
        await _writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        _writer.Reset();
        stream.WriteByte((byte)'\n');
        Written++;
    }

    private void WriteArray(string name, float[] values)
    {
        _writer.WriteStartArray(name);
        foreach (var v in values) _writer.WriteNumberValue(v);
        _writer.WriteEndArray();
    }
}
