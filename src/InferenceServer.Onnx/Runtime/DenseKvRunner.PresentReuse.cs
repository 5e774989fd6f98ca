// Licensed under the MIT License. See LICENSE in the repository root.
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Steady-state decode without gathering: while the batch holds the same sequences in the same order, each adding one
/// token, the previous step's <c>present.*</c> outputs are fed back as <c>past_key_values.*</c>. Each row keeps the holes
/// its padding left (masked to zero), so the copy work per step is the new tokens' KV only; any change of composition
/// falls back to assembling the past from the pages, which also compacts the holes.
/// </summary>
public sealed partial class DenseKvRunner
{
    private IDisposableReadOnlyCollection<OrtValue>? _lastPresent;
    private long[] _lastSequenceIds = [];
    private int[] _lastNextPast = [];
    private long[] _lastMask = [];
    private int _lastRows;
    private int _lastTotalLength;

    private bool CanReusePresent(ForwardBatch batch)
    {
        if (_lastPresent is null || batch.RowCount != _lastRows || batch.MaxNewTokens != 1)
        {
            return false;
        }

        // Holes grow by one per step for rows that were padded; compact when they outweigh the real past.
        if (_lastTotalLength > (2 * batch.MaxPastLength) + 64)
        {
            return false;
        }

        for (var r = 0; r < batch.RowCount; r++)
        {
            var id = batch.SequenceId(r);
            if (id < 0 || id != _lastSequenceIds[r] || batch.PastLength(r) != _lastNextPast[r])
            {
                return false;
            }
        }

        return true;
    }

    private void FillDecodeInputsOverPresent(ForwardBatch batch, int rows, int pastLength)
    {
        var totalLength = pastLength + 1;
        Grow(ref _inputIds, rows);
        Grow(ref _positions, rows);
        Grow(ref _mask, rows * totalLength);
        for (var r = 0; r < rows; r++)
        {
            _inputIds[r] = batch.Tokens(r)[0];
            _positions[r] = Math.Min(batch.PastLength(r), Spec.ContextLength - 1);
            _lastMask.AsSpan(r * pastLength, pastLength).CopyTo(_mask.AsSpan(r * totalLength));
            _mask[(r * totalLength) + pastLength] = 1;
        }
    }

    private void KeepPresent(ForwardBatch batch, IDisposableReadOnlyCollection<OrtValue> outputs, int totalLength)
    {
        ReleasePresent();
        var rows = batch.RowCount;
        if (_lastSequenceIds.Length < rows)
        {
            _lastSequenceIds = new long[Math.Max(rows, _lastSequenceIds.Length * 2)];
            _lastNextPast = new int[_lastSequenceIds.Length];
        }

        for (var r = 0; r < rows; r++)
        {
            _lastSequenceIds[r] = batch.SequenceId(r);
            _lastNextPast[r] = batch.PastLength(r) + batch.Tokens(r).Length;
        }

        Grow(ref _lastMask, rows * totalLength);
        _mask.AsSpan(0, rows * totalLength).CopyTo(_lastMask);
        _lastRows = rows;
        _lastTotalLength = totalLength;
        _lastPresent = outputs;
    }

    private void ReleasePresent()
    {
        _lastPresent?.Dispose();
        _lastPresent = null;
        _lastRows = 0;
    }
}
