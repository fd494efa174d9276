namespace FreeBind.Encoding.Fusion;

/// <summary>
/// An item of a <see cref="FusionEngine.FuseBatch"/> call whose atoms cannot be fused (missing,
/// wrong size, not finite): the caller can set that item aside and fuse the others.
/// </summary>
public sealed class FusionInputException(int item, string message) : ArgumentException($"item {item}: {message}")
{
    /// <summary>Index of the item in the batch.</summary>
    public int Item { get; } = item;

    /// <summary>What is wrong with it, without the index.</summary>
    public string Reason { get; } = message;
}
