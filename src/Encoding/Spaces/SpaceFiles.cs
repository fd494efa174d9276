using System.Text.Json;
using System.Text.Json.Nodes;

namespace FreeBind.Encoding.Spaces;

/// <summary>
/// The files a space version covers and their SHA-256 digests: every file the manifest names, plus
/// the external weight files (<c>.onnx.data</c>) of models over 2 GB. Paths are relative to the
/// model root, with <c>/</c>. Stored with a version, it is what a machine without the encoders
/// needs to name the version and its atoms (<see cref="SpaceLoader.Build(SpaceManifest, string, SpaceLoadOptions)"/>
/// with <see cref="SpaceUse.Fuse"/>).
/// </summary>
public sealed class SpaceFiles
{
    public SpaceFiles(IReadOnlyDictionary<string, string> digests, IReadOnlyDictionary<string, IReadOnlyList<string>>? externalData = null)
    {
        Digests = new SortedDictionary<string, string>(digests.ToDictionary(), StringComparer.Ordinal);
        ExternalData = new SortedDictionary<string, IReadOnlyList<string>>(
            (externalData ?? new Dictionary<string, IReadOnlyList<string>>()).ToDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)[.. kv.Value.Order(StringComparer.Ordinal)]),
            StringComparer.Ordinal);
        foreach (var (path, digest) in Digests)
            if (digest.Length != 64 || !digest.All(char.IsAsciiHexDigitLower))
                throw new FormatException($"digest of '{path}' is not 64 lower-case hex digits: '{digest}'");
        foreach (var (model, data) in ExternalData)
            foreach (var file in data.Prepend(model))
                if (!Digests.ContainsKey(file)) throw new FormatException($"external data of '{model}' names '{file}', which has no digest");
    }

    public static SpaceFiles Empty { get; } = new(new Dictionary<string, string>());

    /// <summary>Relative path → lower-case hex SHA-256, sorted by path.</summary>
    public IReadOnlyDictionary<string, string> Digests { get; }

    /// <summary>Model file → the external weight files it loads (only models that have any).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> ExternalData { get; }

    /// <summary>
    /// The digest of a model with its weights: the file's own SHA-256 when its weights are inside
    /// it, else a SHA-256 over the file's and its external weight files' digests (so atoms are
    /// keyed by what really computed them).
    /// </summary>
    public string ModelDigest(string model)
    {
        if (!Digests.TryGetValue(model, out var digest))
            throw new KeyNotFoundException($"no digest for model file '{model}'");
        if (!ExternalData.TryGetValue(model, out var data) || data.Count == 0) return digest;
        var text = new System.Text.StringBuilder("freebind-model/1\n").Append(model).Append('\n').Append(digest).Append('\n');
        foreach (var file in data) text.Append(file).Append('\n').Append(Digests[file]).Append('\n');
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary><c>{"files":{path:sha256},"externalData":{model:[files]}}</c> (what <c>freebind spaces show --json</c> prints inside its document).</summary>
    public JsonObject ToJson()
    {
        var files = new JsonObject();
        foreach (var (path, digest) in Digests) files[path] = digest;
        var external = new JsonObject();
        foreach (var (model, data) in ExternalData) external[model] = new JsonArray([.. data.Select(d => (JsonNode)d)]);
        return new JsonObject { ["files"] = files, ["externalData"] = external };
    }

    /// <summary>Reads the <c>files</c> and <c>externalData</c> members of a JSON object (other members are ignored).</summary>
    public static SpaceFiles Parse(string json, string origin)
    {
        try
        {
            var root = JsonNode.Parse(json) as JsonObject ?? throw new FormatException($"{origin}: not a JSON object");
            if (root["files"] is not JsonObject files) throw new FormatException($"{origin}: no \"files\" object (path → sha256)");
            var digests = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (path, value) in files)
                digests[path] = value?.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : throw new FormatException($"{origin}: files.{path} is not a string");
            var external = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
            if (root["externalData"] is JsonObject data)
                foreach (var (model, list) in data)
                    external[model] = list is JsonArray array
                        ? [.. array.Select(v => v?.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw new FormatException($"{origin}: externalData.{model} must list file names"))]
                        : throw new FormatException($"{origin}: externalData.{model} must be an array");
            return new SpaceFiles(digests, external);
        }
        catch (JsonException e)
        {
            throw new FormatException($"{origin}: not valid JSON ({e.Message})", e);
        }
        catch (FormatException e) when (!e.Message.StartsWith(origin, StringComparison.Ordinal))
        {
            throw new FormatException($"{origin}: {e.Message}", e);
        }
    }
}
