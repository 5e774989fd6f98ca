// Licensed under the MIT License. See LICENSE in the repository root.
using BenchmarkDotNet.Attributes;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Benchmarks;

/// <summary>
/// One steady decode step of the default model (models/tiny-pycoder) on the CPU, through the runner the server uses
/// for it (<see cref="DenseKvRunner"/>, the Optimum graph rewritten at load): <see cref="Rows"/> sequences at a
/// 128-token past each add one token per step. An operation is <see cref="StepsPerOperation"/> steps over the same
/// sequences, the first assembling the past from the pages and the rest feeding the last step's present back (ADR
/// 0001), as a steady decode runs; times and allocations are reported per step.
/// </summary>
[MemoryDiagnoser]
public class DecodeStepBenchmarks
{
    private const int StepsPerOperation = 32;
    private const int BlockSize = 16;
    private const int Past = 128;

    private OnnxDecoderModel? _model;
    private DenseKvRunner? _runner;
    private ForwardBatch _batch = new();
    private float[] _logits = [];
    private int[][] _tables = [];

    /// <summary>Sequences in each step.</summary>
    [Params(1, 16)]
    public int Rows { get; set; }

    /// <summary>Loads the model, makes the runner and prefills every row's 128-token past.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _model = OnnxDecoderModel.Open(ModelPackage.Load(Paths.DefaultModel()));
        var blocksPerRow = (Past + StepsPerOperation + BlockSize - 1) / BlockSize;
        _runner = new DenseKvRunner(_model, Rows * blocksPerRow, BlockSize);
        _tables = [.. Enumerable.Range(0, Rows).Select(r => Enumerable.Range(r * blocksPerRow, blocksPerRow).ToArray())];
        _logits = new float[Rows * _model.Spec.VocabularySize];
        _batch = new ForwardBatch();
        for (var r = 0; r < Rows; r++)
        {
            _batch.Clear();
            _batch.AddRow([.. Enumerable.Range(0, Past).Select(i => 10 + ((i * 37) + (r * 101)) % 4000)], 0, _tables[r], wantLogits: true, sequenceId: r);
            _runner.Forward(_batch, _logits);
        }
    }

    /// <summary>Disposes the runner and the model.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _runner?.Dispose();
        _model?.Dispose();
    }

    /// <summary>Decode steps at past 128 to 159 (each operation writes the same positions again).</summary>
    [Benchmark(OperationsPerInvoke = StepsPerOperation)]
    [AllocationBudget(AllocationBudgets.DenseDecodeStep)]
    public void DecodeStep()
    {
        for (var s = 0; s < StepsPerOperation; s++)
        {
            _batch.Clear();
            for (var r = 0; r < Rows; r++)
            {
                _batch.AddRow([42 + r + s], Past + s, _tables[r], wantLogits: true, sequenceId: r);
            }

            _runner!.Forward(_batch, _logits);
        }
    }
}
