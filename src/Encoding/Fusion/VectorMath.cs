using System.Numerics.Tensors;

namespace FreeBind.Encoding.Fusion;

/// <summary>The element-wise maths of the bonds (DESIGN.md §1).</summary>
public static class VectorMath
{
    public const float NormFloor = 1e-12f;

    /// <summary>n(x) = x / max(|x|2, 1e-12), as <c>F.normalize</c>.</summary>
    public static float[] Normalize(ReadOnlySpan<float> x)
    {
        var result = new float[x.Length];
        Normalize(x, result);
        return result;
    }

    /// <summary>n(x) into <paramref name="destination"/> (which may be <paramref name="x"/> itself).</summary>
    public static void Normalize(ReadOnlySpan<float> x, Span<float> destination) =>
        TensorPrimitives.Divide(x, MathF.Max(TensorPrimitives.Norm(x), NormFloor), destination);

    /// <summary>n(f·a + (1−f)·b).</summary>
    public static float[] Blend(ReadOnlySpan<float> a, ReadOnlySpan<float> b, double f)
    {
        var result = new float[a.Length];
        Blend(a, b, f, result);
        return result;
    }

    /// <summary>n(f·a + (1−f)·b) into <paramref name="destination"/> (which may be <paramref name="a"/> itself).</summary>
    public static void Blend(ReadOnlySpan<float> a, ReadOnlySpan<float> b, double f, Span<float> destination)
    {
        // (1−f)·b first, apart, so that destination may alias a; the same operations in the same
        // order whichever overload is called, so batch and single-item fusion agree to the bit.
        Span<float> scaled = a.Length <= 4096 ? stackalloc float[a.Length] : new float[a.Length];
        TensorPrimitives.Multiply(b, (float)(1 - f), scaled);
        TensorPrimitives.MultiplyAdd(a, (float)f, scaled, destination);
        TensorPrimitives.Divide(destination, MathF.Max(TensorPrimitives.Norm(destination), NormFloor), destination);
    }
}
