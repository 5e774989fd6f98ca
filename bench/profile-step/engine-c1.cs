// The engine alone at concurrency 1 (no HTTP, no client process): one 128-token greedy request at a time through the
// continuous batcher on the default model, 12 measured rounds after 2 warm-up ones. Run from the repository root:
//   dotnet run bench/profile-step/engine-c1.cs -c Release
#:project ../../src/InferenceServer.Engine/InferenceServer.Engine.csproj
#:property TreatWarningsAsErrors=false
#:property GenerateDocumentationFile=false
using System.Diagnostics;
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;

using var model = ServedModel.Load(args.Length > 0 ? args[0] : "models/tiny-pycoder");
var scheduler = new ContinuousBatchScheduler(model, new SchedulerOptions(), NullLogger<ContinuousBatchScheduler>.Instance);
scheduler.Start();
var ids = Enumerable.Range(0, 128).Select(i => 10 + (i * 37) % 4000).ToArray();
for (var round = 0; round < 14; round++)
{
    var request = new GenerationRequest { RequestId = "r" + round, PromptTokens = ids, Sampling = SamplingParameters.Greedy, Stop = new StopConditions { MaxTokens = 128, IgnoreEos = true } };
    scheduler.TrySubmit(request, out var updates, CancellationToken.None);
    var gaps = new List<double>();
    long last = 0; long first = 0; var start = Stopwatch.GetTimestamp();
    await foreach (var u in updates.ReadAllAsync())
    {
        if (u.TokenId < 0) continue;
        var now = Stopwatch.GetTimestamp();
        if (first == 0) first = now; else gaps.Add(Stopwatch.GetElapsedTime(last, now).TotalMilliseconds);
        last = now;
    }
    if (round < 2) continue;
    gaps.Sort();
    Console.WriteLine($"ttft {Stopwatch.GetElapsedTime(start, first).TotalMilliseconds:F2} ms, ITL mean {gaps.Average():F3} p50 {gaps[gaps.Count/2]:F3} p99 {gaps[(int)(gaps.Count*0.99)]:F3} ms, {128 * 1000 / Stopwatch.GetElapsedTime(start, last).TotalMilliseconds:F0} tok/s");
}
await scheduler.DisposeAsync();
