// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Inspection;

/// <summary>One KV-cache index as the graph declares it: <c>past_key_values.{Index}.key|value</c>.</summary>
/// <param name="Index">The KV index.</param>
/// <param name="KeyHeads">Heads of the cached key (dimension 1).</param>
/// <param name="KeyWidth">Width of the cached key (dimension 3).</param>
/// <param name="ValueHeads">Heads of the cached value.</param>
/// <param name="ValueWidth">Width of the cached value.</param>
/// <param name="ElementBytes">Bytes per element (4 for fp32, 2 for fp16/bf16).</param>
internal sealed record KvInputInfo(int Index, long KeyHeads, long KeyWidth, long ValueHeads, long ValueWidth, int ElementBytes)
{
    /// <summary>Cache bytes one token costs at this index.</summary>
    public long BytesPerToken => ((KeyHeads * KeyWidth) + (ValueHeads * ValueWidth)) * ElementBytes;
}
