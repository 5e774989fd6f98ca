// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Benchmarks;

/// <summary>
/// The most managed-heap bytes one operation of the benchmark may allocate (BenchmarkDotNet's MemoryDiagnoser measures
/// it); <see cref="Program"/> exits 1 when a benchmark goes over.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class AllocationBudgetAttribute(long bytesPerOperation) : Attribute
{
    /// <summary>The budget, in bytes per operation.</summary>
    public long BytesPerOperation { get; } = bytesPerOperation;
}
