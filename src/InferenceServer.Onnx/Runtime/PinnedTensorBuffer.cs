// Licensed under the MIT License. See LICENSE in the repository root.
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// A pinned host array that a step fills, with <see cref="OrtValue"/> views of its prefix cached per shape
/// (<see cref="TensorViews"/>): a step whose shapes repeat (a steady decode) binds the same views again and creates
/// nothing. The array grows by doubling, which drops the views.
/// </summary>
internal sealed class PinnedTensorBuffer<T> : ITensorViews, IDisposable
    where T : unmanaged
{
    private readonly TensorViews _views = new();
    private readonly Func<long[], long, OrtValue> _create;
    private T[] _data;

    /// <summary>Creates the buffer with room for <paramref name="capacity"/> elements.</summary>
    public PinnedTensorBuffer(int capacity)
    {
        _data = GC.AllocateArray<T>(Math.Max(1, capacity), pinned: true);
        _create = CreateView;
    }

    /// <summary>The first <paramref name="length"/> elements, after growing to hold them (growing discards the contents).</summary>
    public Span<T> Reserve(int length)
    {
        if (length > _data.Length)
        {
            _views.Clear();
            _data = GC.AllocateArray<T>(Math.Max(length, _data.Length * 2), pinned: true);
        }

        return _data.AsSpan(0, length);
    }

    /// <summary>The first <paramref name="length"/> elements as they are.</summary>
    public ReadOnlySpan<T> Read(int length) => _data.AsSpan(0, length);

    /// <summary>A view of the first <c>rows x columns</c> elements shaped <c>[rows, columns]</c>, or of <c>rows</c> elements shaped <c>[rows]</c> when columns is -1.</summary>
    public OrtValue View(long rows, long columns = -1) => _views.Get(rows, columns, _create);

    /// <inheritdoc />
    public OrtValue ViewAt(long offset, long rows, long columns) =>
        OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<T>(_data, (int)offset, (int)(rows * columns)), [rows, columns]);

    /// <inheritdoc />
    public void Dispose() => _views.Clear();

    private OrtValue CreateView(long[] shape, long count) =>
        OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<T>(_data, 0, (int)count), shape);
}
