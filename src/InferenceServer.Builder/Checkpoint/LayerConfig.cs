// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Checkpoint;

/// <summary>
/// One decoder layer's shape. Uniform models repeat the model-level counts; pruned checkpoints (<c>block_configs</c>)
/// drop the attention or MLP sub-block or narrow them per layer.
/// </summary>
/// <param name="HasAttention">False when <c>attention.no_op</c>: no input norm, no q/k/v/o, no KV cache.</param>
/// <param name="HeadCount">Query heads (0 without attention).</param>
/// <param name="KvHeadCount">Key/value heads (0 without attention).</param>
/// <param name="HasMlp">False when <c>ffn.no_op</c>: no post-attention norm, no MLP.</param>
/// <param name="IntermediateSize">MLP inner width (0 without MLP).</param>
public sealed record LayerConfig(bool HasAttention, int HeadCount, int KvHeadCount, bool HasMlp, int IntermediateSize);
