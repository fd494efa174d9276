using System.Numerics.Tensors;
using FreeBind.Encoding.Execution;
using FreeBind.Encoding.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace FreeBind.Encoding.Fusion;

/// <summary>
/// Checks extracted (batch-norm folded) projector weights against ONNX Runtime running the
/// original file, so an export whose graph only looks like a projector is refused at load.
/// </summary>
internal static class ProjectorVerifier
{
    private const int Rows = 4;
    private const float Tolerance = 1e-4f;

    public static void Verify(ProjectorWeights w, string path, SessionFactory sessions)
    {
        var random = new Random(20240521);
        var x = new float[Rows * w.InputDimension];
        for (var i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1);
        var expected = Evaluate(w, x);
        float[] actual;
        using (var session = sessions.Create(path))
        {
            using var input = OrtValue.CreateTensorValueFromMemory(x, [Rows, w.InputDimension]);
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, [session.InputMetadata.Keys.First()], [input], [session.OutputMetadata.Keys.First()]);
            actual = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
        if (actual.Length != expected.Length)
            throw new InvalidDataException($"projector '{path}': ONNX Runtime returned {actual.Length} values, expected {expected.Length}");
        var diff = 0f;
        for (var i = 0; i < actual.Length; i++) diff = MathF.Max(diff, MathF.Abs(actual[i] - expected[i]));
        if (!(diff <= Tolerance))
            throw new InvalidDataException($"projector '{path}': its graph is not the upstream projector shape (extracted maths differ from ONNX Runtime by {diff:G3})");
    }

    /// <summary>Plain evaluation of one projector on <see cref="Rows"/> rows.</summary>
    internal static float[] Evaluate(ProjectorWeights w, float[] x)
    {
        var rows = x.Length / w.InputDimension;
        var output = new float[rows * w.OutputDimension];
        var hidden = new float[w.HiddenDimension];
        for (var r = 0; r < rows; r++)
        {
            w.B1.CopyTo(hidden, 0);
            for (var i = 0; i < w.InputDimension; i++)
                TensorPrimitives.MultiplyAdd(w.W1.AsSpan(i * w.HiddenDimension, w.HiddenDimension), x[r * w.InputDimension + i], hidden, hidden);
            TensorPrimitives.Max(hidden, 0f, hidden);
            var y = output.AsSpan(r * w.OutputDimension, w.OutputDimension);
            w.B2.CopyTo(y);
            for (var h = 0; h < w.HiddenDimension; h++)
                TensorPrimitives.MultiplyAdd(w.W2.AsSpan(h * w.OutputDimension, w.OutputDimension), hidden[h], y, y);
            TensorPrimitives.Divide(y, MathF.Max(TensorPrimitives.Norm(y), VectorMath.NormFloor), y);
        }
        return output;
    }
}
