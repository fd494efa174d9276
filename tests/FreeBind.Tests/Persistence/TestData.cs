using System.Security.Cryptography;
using FreeBind.Persistence.Embeddings;

namespace FreeBind.Tests.Persistence;

/// <summary>Deterministic vectors and items for storage tests.</summary>
internal static class TestData
{
    public static float[] Vector(int seed, int dimension)
    {
        var random = new Random(seed);
        var v = new float[dimension];
        double norm = 0;
        for (var i = 0; i < dimension; i++)
        {
            v[i] = (float)(random.NextDouble() * 2 - 1);
            norm += v[i] * v[i];
        }
        var scale = (float)(1 / Math.Sqrt(norm));
        for (var i = 0; i < dimension; i++)
            v[i] *= scale;
        return v;
    }

    public static string Sha256(string content) => Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(content)));

    public static MediaItem Media(string id, string tenant = "acme", string modality = "image", string? content = null) =>
        new(id, tenant, modality, $"file:///media/{id}.jpg", Sha256(content ?? id), $$"""{"name":"{{id}}"}""");

    public static EmbeddedItem Item(string id, int seed, int dimension, IReadOnlyList<TagScore>? tags = null, string tenant = "acme") =>
        new(Media(id, tenant), Vector(seed, dimension),
            [new Atom("imagebind", "sha256:ib", Vector(seed + 1000, 1024)), new Atom("internvl-c", "sha256:ivl", Vector(seed + 2000, 768))],
            tags ?? []);

    public static List<EmbeddedItem> Items(int count, int dimension, string prefix = "m", int seed = 0) =>
        Enumerable.Range(0, count).Select(i => Item($"{prefix}{i:D6}", seed + i, dimension)).ToList();
}
