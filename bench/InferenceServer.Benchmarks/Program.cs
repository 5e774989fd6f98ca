// Licensed under the MIT License. See LICENSE in the repository root.
using System.Reflection;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using InferenceServer.Benchmarks;

// In process: the benchmarks load the repository's model and ONNX Runtime's native library, which a generated child
// project would have to find again; BenchmarkDotNet's own arguments (--filter, --job short, ...) pass through.
var config = DefaultConfig.Instance
    .AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance))
    .AddDiagnoser(MemoryDiagnoser.Default)
    .WithOptions(ConfigOptions.DisableOptimizationsValidator);
var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);

// The allocation budgets: every benchmark with [AllocationBudget] against what MemoryDiagnoser measured.
var over = 0;
foreach (var report in summaries.SelectMany(static s => s.Reports))
{
    var budget = report.BenchmarkCase.Descriptor.WorkloadMethod.GetCustomAttribute<AllocationBudgetAttribute>();
    var allocated = report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase);
    if (budget is null || allocated is null)
    {
        continue;
    }

    var ok = allocated <= budget.BytesPerOperation;
    over += ok ? 0 : 1;
    Console.WriteLine($"allocation budget: {report.BenchmarkCase.DisplayInfo}: {allocated} B per operation, budget {budget.BytesPerOperation} B: {(ok ? "ok" : "OVER")}");
}

return over == 0 ? 0 : 1;
