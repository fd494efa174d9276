namespace FreeBind.Encoding.Preprocessing.Image;

/// <summary>
/// The image profiles: decode → RGB → short side to 224 (PIL bicubic) → centre crop 224 → scale →
/// normalise → <c>pixel_values</c> float32 [1,3,224,224]. The two upstream recipes differ only in
/// mean/std, how the crop offset is rounded and how [0,1] scaling is computed.
/// </summary>
public sealed class VisionPreprocessor : IPreprocessor
{
    public const int Size = 224;
    public const string InputName = "pixel_values";

    /// <summary>ImageBind: torchvision Resize(224, BICUBIC), CenterCrop(224), ToTensor, Normalize (CLIP mean/std).</summary>
    public static readonly VisionRecipe ImageBind = new(
        "imagebind-vision",
        [0.48145466f, 0.4578275f, 0.40821073f],
        [0.26862954f, 0.26130258f, 0.27577711f],
        CropRoundsHalfToEven: true,
        ScaleInDouble: false);

    /// <summary>InternVL-C: HF CLIPImageProcessor (shortest edge 224, crop 224, bicubic, ImageNet mean/std).</summary>
    public static readonly VisionRecipe InternVL = new(
        "internvl-vision",
        [0.485f, 0.456f, 0.406f],
        [0.229f, 0.224f, 0.225f],
        CropRoundsHalfToEven: false,
        ScaleInDouble: true);

    private readonly VisionRecipe _recipe;
    private readonly PreprocessingOptions _options;

    public VisionPreprocessor(VisionRecipe recipe, PreprocessingOptions options)
    {
        _recipe = recipe;
        _options = options;
    }

    public string Profile => _recipe.Profile;

    public Modality Modality => Modality.Image;

    public PreprocessedItem Process(MediaInput input)
    {
        if (input.Modality != Modality.Image)
            throw new ArgumentException($"{Profile} preprocesses images, not {input.Modality.ToName()}", nameof(input));
        return new PreprocessedItem([Preprocess(_recipe, input.Bytes.Span, _options.MaxImagePixels)]);
    }

    /// <summary>Pure bytes → tensor for one recipe (what the benchmark times).</summary>
    public static ModelTensor Preprocess(VisionRecipe recipe, ReadOnlySpan<byte> encoded, long maxPixels)
    {
        using var pixels = ImageDecoder.DecodeRgbx(encoded, maxPixels);
        return ModelTensor.Float32(InputName, [1, 3, Size, Size], Transform(recipe, pixels));
    }

    /// <summary>Decoded RGB → CHW float32 (3·224·224).</summary>
    public static float[] Transform(VisionRecipe recipe, RgbImage image)
    {
        using var pixels = RgbxBuffer.From(image);
        return Transform(recipe, pixels);
    }

    private static float[] Transform(VisionRecipe recipe, RgbxBuffer image)
    {
        var (w, h) = ShortSideTo(image.Width, image.Height, Size);
        var top = CropOffset(h, recipe.CropRoundsHalfToEven);
        var left = CropOffset(w, recipe.CropRoundsHalfToEven);
        // Only the centre crop of the resized image is ever computed.
        var crop = new byte[Size * Size * 3];
        PilBicubic.ResizeRegion(image, w, h, left, top, Size, Size, crop);

        var lut = new float[3 * 256];
        for (var c = 0; c < 3; c++)
        {
            for (var v = 0; v < 256; v++)
            {
                // Same float32 operation order as torch (x/255 − mean)/std and numpy (x·(1/255) in
                // float64 → float32, − mean, / std), so equal bytes give bit-equal floats.
                var x = recipe.ScaleInDouble ? (float)(v * (1.0 / 255)) : v / 255f;
                lut[c * 256 + v] = (x - recipe.Mean[c]) / recipe.Std[c];
            }
        }

        var plane = Size * Size;
        var output = new float[3 * plane];
        for (int o = 0, p = 0; o < plane; o++, p += 3)
        {
            output[o] = lut[crop[p]];
            output[plane + o] = lut[256 + crop[p + 1]];
            output[2 * plane + o] = lut[512 + crop[p + 2]];
        }

        return output;
    }

    /// <summary>torchvision/HF rule: short side → size, long side → int(size·long/short) (truncated).</summary>
    internal static (int Width, int Height) ShortSideTo(int width, int height, int size)
    {
        if (width <= height)
            return (size, (int)((double)size * height / width));
        return ((int)((double)size * width / height), size);
    }

    // torchvision: int(round((n − 224) / 2.0)) with Python's half-to-even; HF: (n − 224) // 2.
    private static int CropOffset(int n, bool halfToEven) =>
        halfToEven ? (int)Math.Round((n - Size) / 2.0, MidpointRounding.ToEven) : (n - Size) / 2;
}

/// <summary>What distinguishes one upstream image recipe from another.</summary>
/// <param name="Profile">Profile name used in manifests.</param>
/// <param name="Mean">Per-channel mean (RGB) subtracted after scaling to [0,1].</param>
/// <param name="Std">Per-channel standard deviation (RGB).</param>
/// <param name="CropRoundsHalfToEven">torchvision CenterCrop rounding (true) or HF floor division (false).</param>
/// <param name="ScaleInDouble">HF rescale (float64 multiply, then float32) instead of torch's float32 divide.</param>
public sealed record VisionRecipe(string Profile, float[] Mean, float[] Std, bool CropRoundsHalfToEven, bool ScaleInDouble);
