// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>
/// Shape of one attention layer's cache rows: KvHeads heads of KeyWidth key values and ValueWidth value values per token.
/// ValueIsKeyPrefix: the value is the first ValueWidth entries of the key (MLA's latent cache); then only the key is stored.
/// </summary>
/// <param name="KvHeads">KV heads.</param>
/// <param name="KeyWidth">Key values per head.</param>
/// <param name="ValueWidth">Value values per head.</param>
/// <param name="ValueIsKeyPrefix">Whether the value is the key's first ValueWidth entries.</param>
public readonly record struct KvLayerShape(int KvHeads, int KeyWidth, int ValueWidth, bool ValueIsKeyPrefix = false);
