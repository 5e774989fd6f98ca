// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Inspection;

/// <summary>A fused attention node: what graph tools cut out per layer.</summary>
/// <param name="Name">Node name.</param>
/// <param name="OpType">Qualified op, such as <c>ai.onnx.Attention</c> or <c>com.microsoft.GroupQueryAttention</c>.</param>
/// <param name="QueryHeads">Query heads (<c>q_num_heads</c> / <c>num_heads</c>), or 0 when the node does not say.</param>
/// <param name="KvHeads">Key/value heads (<c>kv_num_heads</c>), or 0 when the node does not say.</param>
/// <param name="PastKey">The past-key input it reads (a graph input or a value computed from one), or empty.</param>
/// <param name="PresentKey">The present-key output it writes, or empty.</param>
internal sealed record AttentionNodeInfo(string Name, string OpType, long QueryHeads, long KvHeads, string PastKey, string PresentKey);
