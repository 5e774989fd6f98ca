// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Host-memory KV pages: per layer, one key pool and one value pool laid out as
/// <c>[block][head][slot][width]</c>, so that a block's run of tokens for one head is contiguous and copies into a
/// dense <c>[batch, head, time, width]</c> past tensor in one <see cref="Span{T}.CopyTo(Span{T})"/> per head.
/// The store holds bytes only; which sequence owns which block is the engine's KV-cache manager's business.
/// </summary>
internal sealed class PagedKvStore
{
    /// <summary>Allocates <paramref name="blockCount"/> blocks of <paramref name="blockSize"/> tokens for every layer of <paramref name="spec"/>.</summary>
    public PagedKvStore(ModelSpec spec, int blockCount, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        BlockCount = blockCount;
        BlockSize = blockSize;
        Layers = spec.KvLayers;
        Keys = new float[Layers.Count][];
        Values = new float[Layers.Count][];
        for (var i = 0; i < Layers.Count; i++)
        {
            Keys[i] = new float[checked((long)blockCount * blockSize * Layers[i].KeyFloatsPerToken)];
            Values[i] = new float[checked((long)blockCount * blockSize * Layers[i].ValueFloatsPerToken)];
        }
    }

    /// <summary>Number of blocks per layer.</summary>
    public int BlockCount { get; }

    /// <summary>Tokens per block.</summary>
    public int BlockSize { get; }

    /// <summary>The layers' layouts.</summary>
    public IReadOnlyList<LayerKvSpec> Layers { get; }

    /// <summary>Key pools, one per layer.</summary>
    internal float[][] Keys { get; }

    /// <summary>Value pools, one per layer.</summary>
    internal float[][] Values { get; }
}
