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
        TensorPrimitives.Divide(x, MathF.Max(TensorPrimitives.Norm(x), NormFloor), result);
        return result;
    }

    /// <summary>n(f·a + (1−f)·b).</summary>
    public static float[] Blend(ReadOnlySpan<float> a, ReadOnlySpan<float> b, double f)
    {
        var result = new float[a.Length];
        TensorPrimitives.Multiply(b, (float)(1 - f), result);
        TensorPrimitives.MultiplyAdd(a, (float)f, result, result);
        TensorPrimitives.Divide(result, MathF.Max(TensorPrimitives.Norm(result), NormFloor), result);
        return result;
    }
}
