namespace FreeBind.Benchmarks.Refusion;

/// <summary>
/// Multiply-add counts of the models the re-fusion benchmark compares, from their shapes (FLOPs =
/// 2 × multiply-adds; normalisations, softmax, GELU and biases are O(tokens × width) and left out).
/// </summary>
internal static class EncoderFlops
{
    /// <summary>
    /// ImageBind-huge's vision encoder per image, from the architecture docs/export.md gives for
    /// <c>encoders/imagebind/vision.onnx</c> (upstream <c>imagebind_huge</c>): a 224×224 image repeated
    /// to 2 frames, Conv3d (2,14,14) patches → 16×16 = 256 patch tokens + CLS = 257 tokens of width 1280;
    /// 32 pre-norm blocks (QKV and output projections: 4·d² per token; MLP ×4: 8·d²; attention scores
    /// and weighted sum: 2·n²·d); the head Linear 1280 → 1024 on the CLS token.
    /// </summary>
    public static double ImageBindHugeVision()
    {
        const double d = 1280, blocks = 32, patches = 16 * 16, tokens = patches + 1, patchInput = 3 * 2 * 14 * 14;
        var patchEmbed = patches * patchInput * d;
        var perBlock = tokens * 12 * d * d + 2 * tokens * tokens * d;
        var head = d * 1024;
        return 2 * (patchEmbed + blocks * perBlock + head);
    }

    /// <summary>The ImageBind++ audio mixture: 14 projectors of 512 → 2048 → 1024 (the fusion benchmark's <see cref="Workload.FlopsPerItem"/>).</summary>
    public static double ImageBindPlusPlusMixture() => Workload.FlopsPerItem;
}
