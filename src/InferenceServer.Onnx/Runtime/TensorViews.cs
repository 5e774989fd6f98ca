// Licensed under the MIT License. See LICENSE in the repository root.
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// <see cref="OrtValue"/> views of one buffer's prefix, cached by shape (<c>[rows]</c> when columns is -1, else
/// <c>[rows, columns]</c>), so that a step whose shapes repeat binds the same views again and creates nothing. Emptied
/// (views disposed) when the buffer moves, and when it holds <see cref="MaxViews"/> shapes.
/// </summary>
internal sealed class TensorViews : IDisposable
{
    private const int MaxViews = 256;

    private readonly Dictionary<(long Rows, long Columns), OrtValue> _views = [];

    /// <summary>The view shaped (<paramref name="rows"/>, <paramref name="columns"/>), made by <paramref name="create"/> on first use.</summary>
    /// <param name="rows">Rows, or the length of a 1-D view.</param>
    /// <param name="columns">Columns, or -1 for a 1-D view.</param>
    /// <param name="create">Makes the view for a shape and its element count; called only when the shape is new.</param>
    public OrtValue Get(long rows, long columns, Func<long[], long, OrtValue> create)
    {
        if (_views.TryGetValue((rows, columns), out var view))
        {
            return view;
        }

        if (_views.Count >= MaxViews)
        {
            Clear();
        }

        view = columns < 0 ? create([rows], rows) : create([rows, columns], rows * columns);
        _views[(rows, columns)] = view;
        return view;
    }

    /// <summary>Disposes every view (the buffer is about to move or go).</summary>
    public void Clear()
    {
        foreach (var view in _views.Values)
        {
            view.Dispose();
        }

        _views.Clear();
    }

    /// <inheritdoc />
    public void Dispose() => Clear();
}
