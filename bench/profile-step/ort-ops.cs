// Where ONNX Runtime spends one decode step of the default model on the CPU, by operator type: runs greedy decode steps
// at batch 1 (the present fed back as the next step's past, as the server's steady decode does) with ONNX Runtime's
// profiler on, then sums the profiler's per-operator times over the measured steps. The profiler adds its own cost to
// every operator, so read the shares, not the absolute times. Run from the repository root:
//   dotnet run bench/profile-step/ort-ops.cs -c Release [model-dir] [past-length] [steps]
#:project ../../src/InferenceServer.Onnx/InferenceServer.Onnx.csproj
#:property TreatWarningsAsErrors=false
#:property GenerateDocumentationFile=false
using System.Text.Json;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

var root = args.Length > 0 ? args[0] : "models/tiny-pycoder";
var past = args.Length > 1 ? int.Parse(args[1]) : 128;
var steps = args.Length > 2 ? int.Parse(args[2]) : 200;
const int Warmup = 20;
const int BlockSize = 16;
var prefix = Path.Combine(Path.GetTempPath(), $"ort-ops-{Environment.ProcessId}");
using (var model = OnnxDecoderModel.Open(ModelPackage.Load(root), new OnnxSessionOptions { ProfilePrefix = prefix }))
{
    var blocks = (past + Warmup + steps + BlockSize) / BlockSize;
    using var runner = new DenseKvRunner(model, blocks, BlockSize);
    var table = Enumerable.Range(0, blocks).ToArray();
    var logits = new float[model.Spec.VocabularySize];
    var forward = new ForwardBatch();
    for (var i = 0; i < Warmup + steps; i++)
    {
        forward.Clear();
        forward.AddRow([42], past + i, table, wantLogits: true, sequenceId: 1);
        runner.Forward(forward, logits);
    }
}

var file = Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(prefix) + "*.json").Single();
using var trace = JsonDocument.Parse(File.ReadAllBytes(file));
File.Delete(file);
var events = trace.RootElement.EnumerateArray().ToList();
var runs = events.Where(static e => e.GetProperty("cat").GetString() == "Session" && e.GetProperty("name").GetString() == "model_run")
    .Select(static e => (Start: e.GetProperty("ts").GetInt64(), End: e.GetProperty("ts").GetInt64() + e.GetProperty("dur").GetInt64()))
    .OrderBy(static r => r.Start)
    .Skip(Warmup)
    .ToList();
var byOp = new Dictionary<string, (long Us, int Count)>();
foreach (var e in events)
{
    if (e.GetProperty("cat").GetString() != "Node" || !e.GetProperty("name").GetString()!.Contains("kernel_time", StringComparison.Ordinal))
    {
        continue;
    }

    var ts = e.GetProperty("ts").GetInt64();
    if (!runs.Any(r => ts >= r.Start && ts <= r.End))
    {
        continue;
    }

    var op = e.GetProperty("args").GetProperty("op_name").GetString()!;
    var (us, count) = byOp.GetValueOrDefault(op);
    byOp[op] = (us + e.GetProperty("dur").GetInt64(), count + 1);
}

var total = byOp.Values.Sum(static v => v.Us);
var runUs = runs.Average(static r => r.End - r.Start);
Console.WriteLine($"{root}: {runs.Count} decode steps at batch 1, past {past}; per step (profiled): run {runUs:F0} us, operators {(double)total / runs.Count:F0} us, {byOp.Values.Sum(static v => v.Count) / (double)runs.Count:F0} operators");
Console.WriteLine("| operator | us per step | share | operators per step |");
Console.WriteLine("|---|---:|---:|---:|");
foreach (var (op, (us, count)) in byOp.OrderByDescending(static kv => kv.Value.Us))
{
    Console.WriteLine($"| {op} | {(double)us / runs.Count:F1} | {100.0 * us / total:F1}% | {(double)count / runs.Count:F1} |");
}
