// The engine alone (no HTTP, no client process): C greedy requests at a time (closed loop: a finished request is
// replaced at once) through the continuous batcher on the default model, 128-token prompts and 128-token outputs.
// Prints output tokens/s, TTFT and TPOT per round, 2 warm-up rounds then 10 measured. Run from the repository root:
//   dotnet run bench/profile-step/engine-alone.cs -c Release -- [concurrency=1] [model=models/tiny-pycoder]
#:project ../../src/InferenceServer.Engine/InferenceServer.Engine.csproj
#:property TreatWarningsAsErrors=false
#:property GenerateDocumentationFile=false
using System.Diagnostics;
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;

var concurrency = args.Length > 0 ? int.Parse(args[0]) : 1;
using var model = ServedModel.Load(args.Length > 1 ? args[1] : "models/tiny-pycoder");
var scheduler = new ContinuousBatchScheduler(model, new SchedulerOptions(), NullLogger<ContinuousBatchScheduler>.Instance);
scheduler.Start();
const int OutputLen = 128;
var perRound = Math.Max(16, 4 * concurrency);
for (var round = 0; round < 12; round++)
{
    var next = 0;
    var ttfts = new List<double>();
    var tpots = new List<double>();
    var start = Stopwatch.GetTimestamp();
    async Task Worker()
    {
        while (true)
        {
            var index = Interlocked.Increment(ref next) - 1;
            if (index >= perRound) return;
            var ids = Enumerable.Range(0, 128).Select(i => 10 + (i * 37 + index * 101 + round * 7) % 4000).ToArray();
            var request = new GenerationRequest { RequestId = $"r{round}-{index}", PromptTokens = ids, Sampling = SamplingParameters.Greedy, Stop = new StopConditions { MaxTokens = OutputLen, IgnoreEos = true } };
            var submitted = Stopwatch.GetTimestamp();
            scheduler.TrySubmit(request, out var updates, CancellationToken.None);
            long first = 0, last = 0;
            await foreach (var u in updates.ReadAllAsync())
            {
                if (u.TokenId < 0) continue;
                last = Stopwatch.GetTimestamp();
                if (first == 0) first = last;
            }
            lock (ttfts)
            {
                ttfts.Add(Stopwatch.GetElapsedTime(submitted, first).TotalMilliseconds);
                tpots.Add(Stopwatch.GetElapsedTime(first, last).TotalMilliseconds / (OutputLen - 1));
            }
        }
    }
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(Worker)));
    var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
    if (round < 2) continue;
    ttfts.Sort(); tpots.Sort();
    Console.WriteLine($"c{concurrency}: {perRound * OutputLen / seconds:F1} tok/s, TTFT p50 {ttfts[ttfts.Count / 2]:F2} ms, TPOT p50 {tpots[tpots.Count / 2]:F3} ms");
}
await scheduler.DisposeAsync();
