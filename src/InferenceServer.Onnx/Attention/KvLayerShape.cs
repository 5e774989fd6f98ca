// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>
/// Shape of one attention layer's cache rows: <paramref name="KvHeads"/> heads of <paramref name="KeyWidth"/> key values
/// and <paramref name="ValueWidth"/> value values per token.
/// </summary>
/// <param name="KvHeads">KV heads of the layer (query heads are a multiple of them).</param>
/// <param name="KeyWidth">Key values per head and token (the query width too).</param>
/// <param name="ValueWidth">Value values per head and token (the output width).</param>
/// <param name="ValueIsKeyPrefix">
/// The value is the first <paramref name="ValueWidth"/> entries of the key (MLA's latent cache: key = [latent, rope key],
/// value = latent); then only the key is stored.
/// </param>
public readonly record struct KvLayerShape(int KvHeads, int KeyWidth, int ValueWidth, bool ValueIsKeyPrefix = false);
