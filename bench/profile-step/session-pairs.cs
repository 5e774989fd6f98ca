// Paired A/B of two ONNX Runtime session settings for the engine alone (no HTTP): two schedulers over the default model,
// one per setting, take one 128-token greedy request each in turn (the same random 128-token prompt for both; which goes
// first alternates), so that the machine's drift hits both alike. Prints the median per-pair ratio of request times.
// Settings are "threads,spinning" (spinning: never, step or always). Run from the repository root:
//   dotnet run bench/profile-step/session-pairs.cs -c Release [A=0,step] [B=0,never] [pairs=20]
#:project ../../src/InferenceServer.Engine/InferenceServer.Engine.csproj
#:property TreatWarningsAsErrors=false
#:property GenerateDocumentationFile=false
using System.Diagnostics;
using InferenceServer.Engine;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Onnx.Runtime;
using Microsoft.Extensions.Logging.Abstractions;

string[] settings = [args.Length > 0 ? args[0] : "0,step", args.Length > 1 ? args[1] : "0,never"];
var pairs = args.Length > 2 ? int.Parse(args[2]) : 20;
const int Warmup = 3;
var models = settings.Select(static s => s.Split(','))
    .Select(static p => ServedModel.Load("models/tiny-pycoder", null, new OnnxSessionOptions { IntraOpThreads = int.Parse(p[0]), Spinning = Enum.Parse<OnnxSpinning>(p[1], ignoreCase: true) }))
    .ToArray();
var schedulers = models.Select(static m => new ContinuousBatchScheduler(m, new SchedulerOptions { EnablePrefixCaching = false }, NullLogger<ContinuousBatchScheduler>.Instance)).ToArray();
foreach (var scheduler in schedulers)
{
    scheduler.Start();
}

var random = new Random(1);
var times = new List<double>[] { [], [] };
var ratios = new List<double>();
for (var i = 0; i < pairs + Warmup; i++)
{
    var prompt = Enumerable.Range(0, 128).Select(_ => random.Next(10, 4096)).ToArray();
    var pair = new double[2];
    foreach (var side in i % 2 == 0 ? new[] { 0, 1 } : [1, 0])
    {
        var request = new GenerationRequest { RequestId = $"{i}-{side}", PromptTokens = prompt, Sampling = SamplingParameters.Greedy, Stop = new StopConditions { MaxTokens = 128, IgnoreEos = true } };
        schedulers[side].TrySubmit(request, out var updates, CancellationToken.None);
        var start = Stopwatch.GetTimestamp();
        await foreach (var _ in updates.ReadAllAsync())
        {
        }

        pair[side] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    if (i >= Warmup)
    {
        times[0].Add(pair[0]);
        times[1].Add(pair[1]);
        ratios.Add(pair[0] / pair[1]);
    }
}

static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
static double Quartile(List<double> values, int q) => values.Order().ElementAt(values.Count * q / 4);
Console.WriteLine($"A = {settings[0]}: median request {Median(times[0]):F1} ms; B = {settings[1]}: {Median(times[1]):F1} ms");
Console.WriteLine($"A/B request time, median of {pairs} pairs: {Median(ratios):F3} (quartiles {Quartile(ratios, 1):F3} .. {Quartile(ratios, 3):F3})");
foreach (var scheduler in schedulers)
{
    await scheduler.DisposeAsync();
}

foreach (var model in models)
{
    model.Dispose();
}
