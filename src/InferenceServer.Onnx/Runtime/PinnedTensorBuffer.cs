// Licensed under the MIT License. See LICENSE in the repository root.
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// A pinned host array that a step fills, with <see cref="OrtValue"/> views of its prefix cached per shape: a step whose
/// shapes repeat (a steady decode) binds the same views again and creates nothing. The array grows by doubling, which
/// drops the views; the cache is also emptied when it holds <see cref="MaxViews"/> shapes.
/// </summary>
internal sealed class PinnedTensorBuffer<T> : IDisposable
    where T : unmanaged
{
    private const int MaxViews = 256;

    private readonly Dictionary<(long, long), OrtValue> _views = [];
    private T[] _data;

    /// <summary>Creates the buffer with room for <paramref name="capacity"/> elements.</summary>
    public PinnedTensorBuffer(int capacity) => _data = GC.AllocateArray<T>(Math.Max(1, capacity), pinned: true);

    /// <summary>The first <paramref name="length"/> elements, after growing to hold them (growing discards the contents).</summary>
    public Span<T> Reserve(int length)
    {
        if (length > _data.Length)
        {
            DropViews();
            _data = GC.AllocateArray<T>(Math.Max(length, _data.Length * 2), pinned: true);
        }

        return _data.AsSpan(0, length);
    }

    /// <summary>The first <paramref name="length"/> elements as they are.</summary>
    public ReadOnlySpan<T> Read(int length) => _data.AsSpan(0, length);

    /// <summary>A 1-D view of the first <paramref name="length"/> elements.</summary>
    public OrtValue View(long length) => View(length, -1);

    /// <summary>A view of the first <c>rows x columns</c> elements shaped <c>[rows, columns]</c> (1-D when columns is -1).</summary>
    public OrtValue View(long rows, long columns)
    {
        if (_views.TryGetValue((rows, columns), out var view))
        {
            return view;
        }

        if (_views.Count >= MaxViews)
        {
            DropViews();
        }

        var count = columns < 0 ? rows : rows * columns;
        long[] shape = columns < 0 ? [rows] : [rows, columns];
        view = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<T>(_data, 0, (int)count), shape);
        _views[(rows, columns)] = view;
        return view;
    }

    /// <inheritdoc />
    public void Dispose() => DropViews();

    private void DropViews()
    {
        foreach (var view in _views.Values)
        {
            view.Dispose();
        }

        _views.Clear();
    }
}
