// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Benchmarks;

/// <summary>The budgets, in bytes per operation, with what sets them.</summary>
internal static class AllocationBudgets
{
    /// <summary>
    /// One decode step of the dense runner, averaged over an operation of 32 steps whose first makes a new decode bucket
    /// (ADR 0001, amended): the 31 steps that continue the bucket allocate nothing (BucketedDecodeTests asserts it); the
    /// bucket's views and IoBinding, about 6.5 KB, are made once per bucket and per growth (every 64 positions), so the
    /// average is about 200 B (215 and 222 at 1 and 16 rows on 2026-12-07; before the bucket it was 1,616 and 1,641,
    /// every step making new tensor wrappers). The budget is that average with a margin.
    /// </summary>
    public const long DenseDecodeStep = 256;
}
