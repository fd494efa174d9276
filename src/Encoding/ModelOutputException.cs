namespace FreeBind.Encoding;

/// <summary>A model produced NaN/Inf or an output of the wrong size; names the model. Never written out.</summary>
public sealed class ModelOutputException(string model, string message) : Exception($"{model}: {message}")
{
    public string Model { get; } = model;

    /// <summary>Throws when <paramref name="values"/> holds NaN or ±Inf.</summary>
    public static void ThrowIfNotFinite(ReadOnlySpan<float> values, string model)
    {
        for (var i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i]))
                throw new ModelOutputException(model, $"output element {i} is {values[i]}; refusing to use a non-finite embedding");
    }
}
