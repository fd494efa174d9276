using System.Text.Json;

namespace FreeBind.Tests.Fusion;

internal static class Jsonl
{
    /// <summary>id → vector of a JSON-lines file with a <c>vector</c> field.</summary>
    public static Dictionary<string, float[]> Vectors(string path) =>
        File.ReadLines(path).Where(l => l.Length > 0).Select(l =>
        {
            using var doc = JsonDocument.Parse(l);
            var root = doc.RootElement;
            return (root.GetProperty("id").GetString()!, root.GetProperty("vector").EnumerateArray().Select(v => v.GetSingle()).ToArray());
        }).ToDictionary(x => x.Item1, x => x.Item2);

    public static float MaxAbsDiff(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        var max = 0f;
        for (var i = 0; i < a.Length; i++) max = MathF.Max(max, MathF.Abs(a[i] - b[i]));
        return max;
    }
}
