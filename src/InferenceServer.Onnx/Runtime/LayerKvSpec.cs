// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The KV-cache layout of one attention layer, read from the graph's <c>past_key_values.{i}.key|value</c> inputs.
/// Key and value may differ in heads and width: an MLA layer caches a latent as "key" and the shared rope key as "value".
/// </summary>
/// <param name="Layer">The index in <c>past_key_values.{i}</c>.</param>
/// <param name="KeyHeads">Heads of the cached key tensor (dimension 1).</param>
/// <param name="KeyWidth">Width of each cached key head (dimension 3).</param>
/// <param name="ValueHeads">Heads of the cached value tensor.</param>
/// <param name="ValueWidth">Width of each cached value head.</param>
public sealed record LayerKvSpec(int Layer, int KeyHeads, int KeyWidth, int ValueHeads, int ValueWidth)
{
    /// <summary>Floats cached per token for the key tensor.</summary>
    internal int KeyFloatsPerToken => KeyHeads * KeyWidth;

    /// <summary>Floats cached per token for the value tensor.</summary>
    internal int ValueFloatsPerToken => ValueHeads * ValueWidth;
}
