// Licensed under the MIT License. See LICENSE in the repository root.
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// Steady decode over fixed-shape tensors (ADR 0001, "bucketed decode"): while the batch holds the same sequences (in
/// any order), each adding one token, every row's past lives in one dense tensor per layer whose time axis is a bucket
/// of <see cref="BucketStep"/> positions (row <c>r</c> fills slots <c>[0, filled_r)</c>, the rest is masked), the new
/// token attends as column <c>bucket</c> of the mask, and after each step the new token's K and V are copied from the
/// present into the row's next slot. The inputs, outputs and their IoBinding keep their shapes until the longest row
/// fills the bucket (then it grows by <see cref="BucketStep"/>), so a steady step creates no tensor and allocates
/// nothing on the managed heap. Rows keep their slots (the bucket maps the batch's rows to them) while the batch
/// changes: a row that joins is gathered into a finished row's slot, and only a batch that keeps none of the rows, or
/// does not fit, assembles a new bucket from the pages.
/// </summary>
public sealed partial class DenseKvRunner
{
    /// <summary>Positions a bucket grows by: at most this many masked slots per row are attended in vain.</summary>
    internal const int BucketStep = 64;

    private readonly BucketStorage _bucketStorage = new();
    private DecodeBucket? _bucket;

    /// <summary>The current bucket's length (0 when there is none); tests read it.</summary>
    internal int BucketLength => _bucket?.Length ?? 0;

    /// <summary>Decode steps that continued the current bucket without assembling it from the pages; tests read it.</summary>
    internal int BucketedSteps { get; private set; }

    /// <summary>Decode steps that kept the bucket's rows but dropped or added some (only the added ones gathered); tests read it.</summary>
    internal int ReshapedSteps { get; private set; }

    /// <summary>Runs a decode-only step (every row one new token) of a padded graph over the bucket.</summary>
    private StepTiming ForwardBucketed(ForwardBatch batch, Span<float> logits)
    {
        var start = System.Diagnostics.Stopwatch.GetTimestamp();
        var rows = batch.RowCount;
        if (_bucket is { } current && current.Continues(batch))
        {
            BucketedSteps++;
        }
        else if (_bucket?.Reshaped(batch, _store) is { } reshaped)
        {
            _bucket.Dispose();
            _bucket = reshaped;
            ReshapedSteps++;
        }
        else
        {
            ReleaseBucket();
            var length = RoundUp(batch.MaxPastLength + 1);
            _bucketStorage.Ensure(Spec, rows, length);
            _bucket = new DecodeBucket(_model, _bucketStorage, rows, length);
            for (var r = 0; r < rows; r++)
            {
                _bucket.GatherRow(r, batch.BlockTable(r), batch.PastLength(r), batch.SequenceId(r), _store);
            }
        }

        var bucket = _bucket;
        bucket.FillTokens(batch, Spec.ContextLength);
        var gathered = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            bucket.Run(_runOptions);
        }
        catch
        {
            ReleaseBucket();
            throw;
        }

        var ran = System.Diagnostics.Stopwatch.GetTimestamp();
        bucket.CopyLogits(batch, logits);
        var presentKeys = _bucketStorage.PresentKeys;
        var presentValues = _bucketStorage.PresentValues;
        for (var i = 0; i < Spec.KvLayers.Count; i++)
        {
            var layer = Spec.KvLayers[i];
            bucket.ScatterNew(batch, presentKeys[i], _store.Keys[i], _store.BlockSize, layer.KeyHeads, layer.KeyWidth);
            bucket.ScatterNew(batch, presentValues[i], _store.Values[i], _store.BlockSize, layer.ValueHeads, layer.ValueWidth);
        }

        // The new tokens into the rows' next slots, growing the bucket first when the longest row has filled it. The
        // new tokens are read from this step's present, whose arrays a growth may replace in the storage: a growth
        // keeps its own references to them.
        var presentLength = bucket.Length;
        if (bucket.Full)
        {
            presentKeys = (float[][])presentKeys.Clone();
            presentValues = (float[][])presentValues.Clone();
            _bucket = bucket.Grown(bucket.Length + BucketStep);
            bucket.Dispose();
        }

        _bucket.Append(presentKeys, presentValues, presentLength);
        return new StepTiming(
            System.Diagnostics.Stopwatch.GetElapsedTime(start, gathered).TotalMilliseconds,
            System.Diagnostics.Stopwatch.GetElapsedTime(gathered, ran).TotalMilliseconds,
            System.Diagnostics.Stopwatch.GetElapsedTime(ran).TotalMilliseconds);
    }

    /// <summary>Drops the bucket (a decode step of other sequences, or the runner's end).</summary>
    private void ReleaseBucket()
    {
        _bucket?.Dispose();
        _bucket = null;
    }

    private static int RoundUp(int length) => (length + BucketStep - 1) / BucketStep * BucketStep;

    /// <summary>
    /// The arrays every bucket of the runner lives in (pinned, reused from bucket to bucket and grown geometrically), so
    /// that a change of composition or a bucket's growth allocates no tensor storage once the capacity is there.
    /// </summary>
    private sealed class BucketStorage
    {
        public long[] Ids { get; private set; } = [];

        public long[] Positions { get; private set; } = [];

        public long[] Mask { get; private set; } = [];

        public bool[] UseCache { get; } = [true];

        public float[] Logits { get; private set; } = [];

        public float[][] PastKeys { get; private set; } = [];

        public float[][] PastValues { get; private set; } = [];

        public float[][] PresentKeys { get; private set; } = [];

        public float[][] PresentValues { get; private set; } = [];

        /// <summary>
        /// Makes room for <paramref name="rows"/> rows of <paramref name="length"/> slots. Arrays that grow are new (the old
        /// ones' contents stay with whoever holds them).
        /// </summary>
        public void Ensure(ModelSpec spec, int rows, int length)
        {
            if (PastKeys.Length != spec.KvLayers.Count)
            {
                PastKeys = [.. spec.KvLayers.Select(_ => Array.Empty<float>())];
                PastValues = [.. PastKeys];
                PresentKeys = [.. PastKeys];
                PresentValues = [.. PastKeys];
            }

            _ = Reserve(spec, rows, length, grow: true);
        }

        /// <summary>Whether <paramref name="rows"/> rows of <paramref name="length"/> slots fit the arrays as they are.</summary>
        public bool Fits(ModelSpec spec, int rows, int length) => PastKeys.Length == spec.KvLayers.Count && Reserve(spec, rows, length, grow: false);

        /// <summary>
        /// Walks every array against what <paramref name="rows"/> rows of <paramref name="length"/> slots need: with
        /// <paramref name="grow"/>, replacing those too small; without, answering false at the first one.
        /// </summary>
        private bool Reserve(ModelSpec spec, int rows, int length, bool grow)
        {
            var fits = Fit(Ids, rows, grow, out var ids) & Fit(Positions, rows, grow, out var positions)
                & Fit(Logits, rows * spec.VocabularySize, grow, out var logits) & Fit(Mask, rows * (length + 1), grow, out var mask);
            (Ids, Positions, Logits, Mask) = (ids, positions, logits, mask);
            for (var i = 0; i < spec.KvLayers.Count && (grow || fits); i++)
            {
                var layer = spec.KvLayers[i];
                fits &= Fit(PastKeys[i], rows * layer.KeyHeads * length * layer.KeyWidth, grow, out PastKeys[i])
                    & Fit(PastValues[i], rows * layer.ValueHeads * length * layer.ValueWidth, grow, out PastValues[i])
                    & Fit(PresentKeys[i], rows * layer.KeyHeads * (length + 1) * layer.KeyWidth, grow, out PresentKeys[i])
                    & Fit(PresentValues[i], rows * layer.ValueHeads * (length + 1) * layer.ValueWidth, grow, out PresentValues[i]);
            }

            return fits;
        }

        /// <summary>
        /// Whether <paramref name="array"/> holds <paramref name="length"/> elements; <paramref name="result"/> is it, or
        /// with <paramref name="grow"/> a new pinned array of at least twice its size when it does not.
        /// </summary>
        private static bool Fit<T>(T[] array, int length, bool grow, out T[] result)
            where T : unmanaged
        {
            var fits = length <= array.Length;
            result = fits || !grow ? array : GC.AllocateArray<T>(Math.Max(length, array.Length * 2), pinned: true);
            return fits;
        }
    }

    /// <summary>
    /// One bucket: the rows' sequences and filled slots, and <see cref="OrtValue"/>s of fixed shape over the storage's
    /// arrays for every input and output of the graph, bound once.
    /// </summary>
    private sealed class DecodeBucket : IDisposable
    {
        private readonly OnnxDecoderModel _model;
        private readonly BucketStorage _storage;
        private readonly IReadOnlyList<LayerKvSpec> _layers;
        private readonly long[] _sequenceIds;
        private readonly int[] _next;
        private readonly int[] _filled;

        // The bucket row (slot) of each of the step's batch rows: the rows keep their slots while the batch changes.
        private readonly int[] _slotOf;
        private readonly List<OrtValue> _values = [];
        private readonly List<(string Name, OrtValue Value)> _inputs = [];
        private readonly StepBinding _binding;
        private readonly bool _bindEveryStep;

        public DecodeBucket(OnnxDecoderModel model, BucketStorage storage, int rows, int length)
        {
            _model = model;
            _storage = storage;
            _layers = model.Spec.KvLayers;
            Rows = rows;
            Length = length;
            _sequenceIds = new long[rows];
            _next = new int[rows];
            _filled = new int[rows];
            _slotOf = new int[rows];
            for (var r = 0; r < rows; r++)
            {
                _slotOf[r] = r;
            }

            _binding = new StepBinding(model.Session);

            // A CUDA session copies a bound host input to the device when it is bound, so there every step binds the
            // inputs again (the copy an unbound run makes anyway); on the CPU they are read in place.
            _bindEveryStep = model.Device.IsCuda;
            try
            {
                var input = 0;
                Input(model.InputNames[input++], Value(storage.Ids, [rows, 1]));
                Input(model.InputNames[input++], Value(storage.Mask, [rows, length + 1]));
                if (model.HasPositionIds)
                {
                    Input(model.InputNames[input++], Value(storage.Positions, [rows, 1]));
                }

                if (model.HasUseCacheBranch)
                {
                    Input(model.InputNames[input++], Value(storage.UseCache, [1]));
                }

                var vocab = model.Spec.VocabularySize;
                _binding.Output(model.OutputNames[0], Value(storage.Logits, [rows, 1, vocab]));
                for (var i = 0; i < _layers.Count; i++)
                {
                    var layer = _layers[i];
                    Input(model.InputNames[input++], Value(storage.PastKeys[i], [rows, layer.KeyHeads, length, layer.KeyWidth]));
                    Input(model.InputNames[input++], Value(storage.PastValues[i], [rows, layer.ValueHeads, length, layer.ValueWidth]));
                    _binding.Output(model.OutputNames[1 + (2 * i)], Value(storage.PresentKeys[i], [rows, layer.KeyHeads, length + 1, layer.KeyWidth]));
                    _binding.Output(model.OutputNames[2 + (2 * i)], Value(storage.PresentValues[i], [rows, layer.ValueHeads, length + 1, layer.ValueWidth]));
                }
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public int Rows { get; }

        /// <summary>Past slots per row (the mask has one more column, the new token's).</summary>
        public int Length { get; }

        /// <summary>Whether some row has filled every slot (the new tokens cannot be appended without growing).</summary>
        public bool Full
        {
            get
            {
                foreach (var filled in _filled)
                {
                    if (filled >= Length)
                    {
                        return true;
                    }
                }

                return false;
            }
        }

        /// <summary>
        /// Whether <paramref name="batch"/> is this bucket's next decode step: the same sequences (in any order), one token
        /// each, each at its next position. Maps the batch's rows to their slots when it is.
        /// </summary>
        public bool Continues(ForwardBatch batch)
        {
            if (batch.RowCount != Rows)
            {
                return false;
            }

            for (var r = 0; r < Rows; r++)
            {
                // The slot the row had last step first: the engine keeps its order while the batch is unchanged.
                var slot = Find(batch.SequenceId(r), _slotOf[r]);
                if (slot < 0 || batch.PastLength(r) != _next[slot])
                {
                    return false;
                }

                _slotOf[r] = slot;
            }

            return true;
        }

        /// <summary>
        /// The bucket for <paramref name="batch"/> when some of its rows are this one's sequences at their next positions
        /// (requests finished and joined, as the engine's decode batch changes): kept rows stay in their slots, new rows
        /// are gathered from the pages into the slots of the gone ones (then at the end), and kept rows beyond the new row
        /// count move into the remaining holes; nothing else is copied. Null when no row is kept, a new row does not fit
        /// the bucket's length, the bucket would be much longer than the rows need, or the storage has no room: then the
        /// caller builds a bucket from the pages.
        /// </summary>
        public DecodeBucket? Reshaped(ForwardBatch batch, PagedKvStore store)
        {
            var rows = batch.RowCount;
            if (RoundUp(batch.MaxPastLength + 1) + BucketStep < Length || batch.MaxPastLength + 1 > Length || !_storage.Fits(_model.Spec, rows, Length))
            {
                return null;
            }

            // Each batch row's slot here (-1: new), and which slots stay.
            var slotOf = new int[rows];
            var kept = new bool[Rows];
            var keptCount = 0;
            for (var r = 0; r < rows; r++)
            {
                var slot = Find(batch.SequenceId(r), r < Rows ? r : 0);
                if (slot >= 0 && (batch.PastLength(r) != _next[slot] || kept[slot]))
                {
                    return null;
                }

                slotOf[r] = slot;
                if (slot >= 0)
                {
                    kept[slot] = true;
                    keptCount++;
                }
            }

            if (keptCount == 0)
            {
                return null;
            }

            // Holes below the new row count, lowest first: kept rows above it move into them, new rows fill the rest.
            var holes = new Queue<int>();
            for (var slot = 0; slot < rows; slot++)
            {
                if (slot >= Rows || !kept[slot])
                {
                    holes.Enqueue(slot);
                }
            }

            var reshaped = new DecodeBucket(_model, _storage, rows, Length);
            for (var r = 0; r < rows; r++)
            {
                var slot = slotOf[r];
                if (slot >= rows)
                {
                    var hole = holes.Dequeue();
                    MoveRow(slot, hole);
                    reshaped.Take(hole, this, slot);
                    slotOf[r] = hole;
                }
                else if (slot >= 0)
                {
                    reshaped.Take(slot, this, slot);
                }
            }

            for (var r = 0; r < rows; r++)
            {
                if (slotOf[r] < 0)
                {
                    slotOf[r] = holes.Dequeue();
                    reshaped.GatherRow(slotOf[r], batch.BlockTable(r), batch.PastLength(r), batch.SequenceId(r), store);
                }
            }

            slotOf.CopyTo(reshaped._slotOf, 0);
            return reshaped;
        }

        /// <summary>Row <paramref name="row"/>'s past from the pages, into slots [0, past).</summary>
        public void GatherRow(int row, ReadOnlySpan<int> blocks, int past, long sequenceId, PagedKvStore store)
        {
            _sequenceIds[row] = sequenceId;
            _next[row] = past;
            _filled[row] = past;
            for (var i = 0; i < _layers.Count; i++)
            {
                var layer = _layers[i];
                DenseKvRunner.Gather(blocks, past, store.Keys[i], store.BlockSize, layer.KeyHeads, layer.KeyWidth, _storage.PastKeys[i].AsSpan(row * layer.KeyHeads * Length * layer.KeyWidth), Length);
                DenseKvRunner.Gather(blocks, past, store.Values[i], store.BlockSize, layer.ValueHeads, layer.ValueWidth, _storage.PastValues[i].AsSpan(row * layer.ValueHeads * Length * layer.ValueWidth), Length);
            }

            var mask = _storage.Mask.AsSpan(row * (Length + 1), Length + 1);
            mask[..past].Fill(1);
            mask[past..].Clear();
        }

        /// <summary>The step's token ids, positions and the new token's mask column.</summary>
        public void FillTokens(ForwardBatch batch, int contextLength)
        {
            for (var r = 0; r < Rows; r++)
            {
                var slot = _slotOf[r];
                _storage.Ids[slot] = batch.Tokens(r)[0];
                _storage.Positions[slot] = Math.Min(batch.PastLength(r), contextLength - 1);
                _storage.Mask[(slot * (Length + 1)) + Length] = 1;
            }
        }

        public void Run(RunOptions options)
        {
            if (_bindEveryStep)
            {
                foreach (var (name, value) in _inputs)
                {
                    _binding.InputAgain(name, value);
                }
            }

            _binding.Run(options);
        }

        /// <summary>Each row's new token's K or V (present column <see cref="Length"/>) into its block.</summary>
        public void ScatterNew(ForwardBatch batch, float[] present, float[] pool, int blockSize, int heads, int width)
        {
            var blockFloats = heads * blockSize * width;
            for (var r = 0; r < Rows; r++)
            {
                var slot = _slotOf[r];
                var position = batch.PastLength(r);
                var block = batch.BlockTable(r)[position / blockSize];
                for (var h = 0; h < heads; h++)
                {
                    present.AsSpan(((((slot * heads) + h) * (Length + 1)) + Length) * width, width)
                        .CopyTo(pool.AsSpan((block * blockFloats) + (((h * blockSize) + (position % blockSize)) * width), width));
                }
            }
        }

        /// <summary>
        /// A bucket of <paramref name="length"/> slots with this one's rows, pasts and masks, laid out again in the
        /// storage (in place when its arrays have room, else into new ones); this bucket's views are stale after it.
        /// </summary>
        public DecodeBucket Grown(int length)
        {
            var mask = _storage.Mask;
            var keys = (float[][])_storage.PastKeys.Clone();
            var values = (float[][])_storage.PastValues.Clone();
            _storage.Ensure(_model.Spec, Rows, length);

            // Every (row, head) run moves to a larger stride: from the last run to the first, so that a run is never
            // overwritten before it moves (within one array the destination never precedes the source); the new slots
            // are cleared (masked, but they must hold finite values).
            Relayout(mask, _storage.Mask, Rows, Length + 1, length + 1, 1);
            for (var i = 0; i < _layers.Count; i++)
            {
                var layer = _layers[i];
                Relayout(keys[i], _storage.PastKeys[i], Rows * layer.KeyHeads, Length, length, layer.KeyWidth);
                Relayout(values[i], _storage.PastValues[i], Rows * layer.ValueHeads, Length, length, layer.ValueWidth);
            }

            // The old new-token column of the mask is a past slot in the grown bucket: masked until Append fills it.
            var grown = new DecodeBucket(_model, _storage, Rows, length);
            for (var r = 0; r < Rows; r++)
            {
                _storage.Mask[(r * (length + 1)) + Length] = 0;
            }

            _sequenceIds.CopyTo(grown._sequenceIds, 0);
            _next.CopyTo(grown._next, 0);
            _filled.CopyTo(grown._filled, 0);
            _slotOf.CopyTo(grown._slotOf, 0);
            return grown;
        }

        /// <summary>
        /// Appends the new tokens of the step just run (column <paramref name="presentLength"/> of its present arrays) to
        /// each row's next slot; the step is done.
        /// </summary>
        public void Append(float[][] presentKeys, float[][] presentValues, int presentLength)
        {
            for (var r = 0; r < Rows; r++)
            {
                var slot = _filled[r];
                for (var i = 0; i < _layers.Count; i++)
                {
                    var layer = _layers[i];
                    AppendColumn(presentKeys[i], presentLength, _storage.PastKeys[i], r, slot, layer.KeyHeads, layer.KeyWidth);
                    AppendColumn(presentValues[i], presentLength, _storage.PastValues[i], r, slot, layer.ValueHeads, layer.ValueWidth);
                }

                _storage.Mask[(r * (Length + 1)) + slot] = 1;
                _filled[r] = slot + 1;
                _next[r]++;
            }
        }

        public void Dispose()
        {
            _binding.Dispose();
            foreach (var value in _values)
            {
                value.Dispose();
            }

            _values.Clear();
        }

        /// <summary>The logit rows the batch wants, from their slots, in the batch's row order.</summary>
        public void CopyLogits(ForwardBatch batch, Span<float> destination)
        {
            var vocab = _model.Spec.VocabularySize;
            var output = 0;
            for (var r = 0; r < Rows; r++)
            {
                if (batch.LogitRows(r) > 0)
                {
                    _storage.Logits.AsSpan(_slotOf[r] * vocab, vocab).CopyTo(destination.Slice(output * vocab, vocab));
                    output++;
                }
            }
        }

        /// <summary>The slot of sequence <paramref name="id"/>, looked for from <paramref name="hint"/> on and then before it; -1 when absent.</summary>
        private int Find(long id, int hint)
        {
            if (id < 0)
            {
                return -1;
            }

            for (var k = 0; k < Rows; k++)
            {
                var slot = (hint + k) % Rows;
                if (_sequenceIds[slot] == id)
                {
                    return slot;
                }
            }

            return -1;
        }

        /// <summary>Slot <paramref name="slot"/>'s sequence state from slot <paramref name="from"/> of <paramref name="source"/>.</summary>
        private void Take(int slot, DecodeBucket source, int from)
        {
            _sequenceIds[slot] = source._sequenceIds[from];
            _next[slot] = source._next[from];
            _filled[slot] = source._filled[from];
        }

        /// <summary>Row <paramref name="from"/>'s past and mask to row <paramref name="to"/> (the layouts keep a row's values together).</summary>
        private void MoveRow(int from, int to)
        {
            _storage.Mask.AsSpan(from * (Length + 1), Length + 1).CopyTo(_storage.Mask.AsSpan(to * (Length + 1)));
            for (var i = 0; i < _layers.Count; i++)
            {
                var layer = _layers[i];
                var keys = layer.KeyHeads * Length * layer.KeyWidth;
                var values = layer.ValueHeads * Length * layer.ValueWidth;
                _storage.PastKeys[i].AsSpan(from * keys, keys).CopyTo(_storage.PastKeys[i].AsSpan(to * keys));
                _storage.PastValues[i].AsSpan(from * values, values).CopyTo(_storage.PastValues[i].AsSpan(to * values));
            }
        }

        private void AppendColumn(float[] present, int presentLength, float[] past, int row, int slot, int heads, int width)
        {
            for (var h = 0; h < heads; h++)
            {
                present.AsSpan(((((row * heads) + h) * (presentLength + 1)) + presentLength) * width, width)
                    .CopyTo(past.AsSpan(((((row * heads) + h) * Length) + slot) * width, width));
            }
        }

        /// <summary>Moves <paramref name="runs"/> runs of <paramref name="from"/> x <paramref name="width"/> values to a stride of <paramref name="to"/> x width, clearing the rest of each.</summary>
        private static void Relayout<T>(T[] source, T[] destination, int runs, int from, int to, int width)
            where T : unmanaged
        {
            for (var run = runs - 1; run >= 0; run--)
            {
                source.AsSpan(run * from * width, from * width).CopyTo(destination.AsSpan(run * to * width));
                destination.AsSpan(((run * to) + from) * width, (to - from) * width).Clear();
            }
        }

        private void Input(string name, OrtValue value)
        {
            _binding.Input(name, value);
            _inputs.Add((name, value));
        }

        /// <summary>A view of the first elements of <paramref name="data"/> shaped <paramref name="shape"/>.</summary>
        private OrtValue Value<T>(T[] data, long[] shape)
            where T : unmanaged
        {
            long count = 1;
            foreach (var dimension in shape)
            {
                count *= dimension;
            }

            var value = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<T>(data, 0, checked((int)count)), shape);
            _values.Add(value);
            return value;
        }
    }
}
