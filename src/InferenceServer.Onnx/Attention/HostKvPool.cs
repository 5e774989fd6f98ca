// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Attention;

/// <summary>
/// KV pages in host memory for several layers: per layer, BlockCount blocks of BlockSize token rows, block ids local to
/// the pool. Placeholder of the split branch (fp32 rows in managed arrays, values rounded to the storage type) until
/// the kernel branch's native implementation is merged.
/// </summary>
internal sealed class HostKvPool : IDisposable
{
    private readonly float[][] _keys;
    private readonly float[][] _values;

    /// <summary>Allocates the pages, zeroed.</summary>
    public HostKvPool(IReadOnlyList<KvLayerShape> layers, int blockCount, int blockSize, KvStorage storage)
    {
        Layers = layers;
        BlockCount = blockCount;
        BlockSize = blockSize;
        Storage = storage;
        _keys = new float[layers.Count][];
        _values = new float[layers.Count][];
        long perToken = 0;
        for (var i = 0; i < layers.Count; i++)
        {
            var l = layers[i];
            _keys[i] = new float[(long)blockCount * blockSize * l.KvHeads * l.KeyWidth];
            _values[i] = l.ValueIsKeyPrefix ? [] : new float[(long)blockCount * blockSize * l.KvHeads * l.ValueWidth];
            perToken += (long)l.KvHeads * (l.KeyWidth + (l.ValueIsKeyPrefix ? 0 : l.ValueWidth));
        }

        var element = storage == KvStorage.Float32 ? 4 : 2;
        BytesPerBlock = perToken * blockSize * element;
        TotalBytes = BytesPerBlock * blockCount;
    }

    /// <summary>The layers' shapes.</summary>
    public IReadOnlyList<KvLayerShape> Layers { get; }

    /// <summary>Blocks per layer.</summary>
    public int BlockCount { get; }

    /// <summary>Token rows per block.</summary>
    public int BlockSize { get; }

    /// <summary>Element type of the pages.</summary>
    public KvStorage Storage { get; }

    /// <summary>Bytes of one block over all layers, key and value.</summary>
    public long BytesPerBlock { get; }

    /// <summary>Bytes of the whole pool.</summary>
    public long TotalBytes { get; }

    /// <summary>Writes T tokens' rows of one layer at slots[t] = localBlock * BlockSize + offset.</summary>
    public void Write(int layer, ReadOnlySpan<int> slots, ReadOnlySpan<float> key, ReadOnlySpan<float> value)
    {
        var l = Layers[layer];
        var kw = l.KvHeads * l.KeyWidth;
        var vw = l.KvHeads * l.ValueWidth;
        for (var t = 0; t < slots.Length; t++)
        {
            Store(key.Slice(t * kw, kw), _keys[layer].AsSpan(slots[t] * kw, kw));
            if (!l.ValueIsKeyPrefix)
            {
                Store(value.Slice(t * vw, vw), _values[layer].AsSpan(slots[t] * vw, vw));
            }
        }
    }

    /// <summary>Copies block <paramref name="source"/> to <paramref name="destination"/> in every layer.</summary>
    public void CopyBlock(int source, int destination)
    {
        for (var i = 0; i < Layers.Count; i++)
        {
            var l = Layers[i];
            var kw = BlockSize * l.KvHeads * l.KeyWidth;
            _keys[i].AsSpan(source * kw, kw).CopyTo(_keys[i].AsSpan(destination * kw, kw));
            if (!l.ValueIsKeyPrefix)
            {
                var vw = BlockSize * l.KvHeads * l.ValueWidth;
                _values[i].AsSpan(source * vw, vw).CopyTo(_values[i].AsSpan(destination * vw, vw));
            }
        }
    }

    /// <summary>The key rows of <paramref name="layer"/>, [BlockCount x BlockSize, KvHeads x KeyWidth].</summary>
    internal ReadOnlySpan<float> Keys(int layer) => _keys[layer];

    /// <summary>The value rows of <paramref name="layer"/> (the keys when the value is their prefix).</summary>
    internal ReadOnlySpan<float> Values(int layer) => Layers[layer].ValueIsKeyPrefix ? _keys[layer] : _values[layer];

    /// <inheritdoc />
    public void Dispose()
    {
    }

    private void Store(ReadOnlySpan<float> source, Span<float> destination)
    {
        for (var i = 0; i < source.Length; i++)
        {
            destination[i] = Storage switch
            {
                KvStorage.Float16 => (float)(Half)source[i],
                KvStorage.BFloat16 => BitConverter.Int32BitsToSingle((int)((uint)(BitConverter.SingleToInt32Bits(source[i]) + 0x7FFF + ((BitConverter.SingleToInt32Bits(source[i]) >> 16) & 1)) & 0xFFFF0000u)),
                _ => source[i],
            };
        }
    }
}
