// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Benchmarks;

/// <summary>The budgets, in bytes per operation, with what sets them.</summary>
internal static class AllocationBudgets
{
    /// <summary>
    /// One steady decode step of the dense runner: 1,616 bytes at 1 row and 1,641 at 16 (MemoryDiagnoser, 2026-12-07,
    /// bench/results/benchmarks-cpu-2026-12-07.md), so nothing per row or per token. Issue 19's goal is 0; this budget is what the runner does today, kept as a guard
    /// against growth. What allocates: ONNX Runtime's C# API wraps every tensor in a managed <c>OrtValue</c>, and the
    /// Optimum graph's time axis grows by one every step, so each step makes new input wrappers (ids, positions, the
    /// mask) and <c>InferenceSession.Run</c> returns a new collection of output wrappers (logits and every layer's
    /// present). The split runner over the builder's graphs binds cached views through IoBindings and allocates nothing
    /// (SplitOverlapTests asserts it); doing the same here needs fixed-shape decode tensors (not done).
    /// </summary>
    public const long DenseDecodeStep = 1_792;
}
