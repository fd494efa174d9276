namespace FreeBind.Encoding.Preprocessing;

/// <summary>
/// One model input for one item, C order. The leading dimension is the number of rows this item
/// contributes to a batch: 1 for most profiles, 3 for ImageBind audio (three clips, averaged after
/// the encoder). Batching concatenates items along that dimension.
/// </summary>
public sealed class ModelTensor
{
    private ModelTensor(string name, int[] shape, float[]? floats, long[]? longs)
    {
        Name = name;
        Shape = shape;
        Floats = floats;
        Longs = longs;
        var count = 1L;
        foreach (var d in shape) count *= d;
        var actual = floats?.Length ?? longs!.Length;
        if (count != actual)
            throw new ArgumentException($"tensor '{name}' has {actual} elements but shape [{string.Join(',', shape)}] needs {count}");
    }

    /// <summary>Input name expected by the model (a single-input model binds by position).</summary>
    public string Name { get; }

    /// <summary>Shape including the leading rows dimension.</summary>
    public int[] Shape { get; }

    /// <summary>Data when the element type is float32.</summary>
    public float[]? Floats { get; }

    /// <summary>Data when the element type is int64.</summary>
    public long[]? Longs { get; }

    public bool IsFloat => Floats is not null;

    /// <summary>Rows this item contributes to a batch (the leading dimension).</summary>
    public int Rows => Shape[0];

    /// <summary>Elements per row.</summary>
    public int RowLength => (Floats?.Length ?? Longs!.Length) / Shape[0];

    public static ModelTensor Float32(string name, int[] shape, float[] data) => new(name, shape, data, null);

    public static ModelTensor Int64(string name, int[] shape, long[] data) => new(name, shape, null, data);
}

/// <summary>Everything one item feeds one expert encoder.</summary>
public sealed record PreprocessedItem(IReadOnlyList<ModelTensor> Inputs);

/// <summary>Raw media handed to a preprocessor: bytes for image/audio, a string for text.</summary>
public sealed record MediaInput(Modality Modality, ReadOnlyMemory<byte> Bytes, string? Text = null, string? FileName = null)
{
    public static MediaInput FromText(string text) => new(Modality.Text, ReadOnlyMemory<byte>.Empty, text);
}

/// <summary>Turns one media item into the tensors of one preprocessing profile (pure, thread-safe).</summary>
public interface IPreprocessor
{
    /// <summary>Profile name as referenced by manifests, e.g. <c>imagebind-vision</c>.</summary>
    string Profile { get; }

    Modality Modality { get; }

    /// <summary>Preprocesses one item; throws <see cref="MediaException"/> for bad input.</summary>
    PreprocessedItem Process(MediaInput input);
}
