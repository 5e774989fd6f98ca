// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Inspection;

/// <summary>What <see cref="ModelInspector"/> reads from a decoder graph.</summary>
internal sealed record ModelInspection
{
    /// <summary>The graph file.</summary>
    public required string Path { get; init; }

    /// <summary>
    /// The graph flavor: <c>inferenceserver.graph</c> from the model's metadata, else <c>paged-v1</c> when it has
    /// <c>key_cache.*</c> inputs and <c>dense-v1</c> otherwise.
    /// </summary>
    public required string Graph { get; init; }

    /// <summary>Element type: <c>inferenceserver.dtype</c> from the metadata, else what the KV inputs' type implies.</summary>
    public required string DType { get; init; }

    /// <summary>ONNX IR version.</summary>
    public required long IrVersion { get; init; }

    /// <summary>Imported opsets as <c>domain:version</c> (the ONNX domain written <c>ai.onnx</c>).</summary>
    public required IReadOnlyList<string> Opsets { get; init; }

    /// <summary>The KV-cache inputs by index.</summary>
    public required IReadOnlyList<KvInputInfo> KvInputs { get; init; }

    /// <summary>Fused attention nodes in graph order (none for graphs exported with decomposed attention).</summary>
    public required IReadOnlyList<AttentionNodeInfo> AttentionNodes { get; init; }

    /// <summary>Elements in all initializers (weights and constant tables).</summary>
    public required long ParameterCount { get; init; }

    /// <summary>Bytes of initializers stored in external data files.</summary>
    public required long ExternalDataBytes { get; init; }

    /// <summary>Node count per qualified op type, most frequent first.</summary>
    public required IReadOnlyList<KeyValuePair<string, int>> Ops { get; init; }

    /// <summary>KV-cache bytes per token over all indices.</summary>
    public long KvBytesPerToken
    {
        get
        {
            long total = 0;
            foreach (var kv in KvInputs)
            {
                total += kv.BytesPerToken;
            }

            return total;
        }
    }
}
