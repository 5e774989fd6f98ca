// A mixed step of the default model on the CPU (continuous batching's usual step): D decode rows at past P beside one
// prefill row of N tokens (past 0), one step repeated 25 times (5 warm-up); prints the median step time. Run from the
// repository root:
//   dotnet run bench/profile-step/mixed-step.cs -c Release
#:project ../../src/InferenceServer.Onnx/InferenceServer.Onnx.csproj
#:property TreatWarningsAsErrors=false
#:property GenerateDocumentationFile=false
using System.Diagnostics;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

using var model = OnnxDecoderModel.Open(ModelPackage.Load("models/tiny-pycoder"), new OnnxSessionOptions());
const int BlockSize = 16;
foreach (var (decodes, past, prefill) in new[] { (3, 200, 128), (15, 200, 128), (3, 1000, 512) })
{
    var blocksPerRow = (Math.Max(past, prefill) + 16 + BlockSize - 1) / BlockSize;
    using var runner = new DenseKvRunner(model, (decodes + 1) * blocksPerRow, BlockSize);
    var forward = new ForwardBatch();
    var logits = new float[(decodes + 1) * model.Spec.VocabularySize];
    var rows = Enumerable.Range(0, decodes + 1).Select(r => Enumerable.Range(r * blocksPerRow, blocksPerRow).ToArray()).ToArray();
    var prompt = Enumerable.Range(0, prefill).Select(i => 10 + (i * 37 % 4000)).ToArray();
    var times = new List<double>();
    for (var i = 0; i < 25; i++)
    {
        forward.Clear();
        for (var r = 0; r < decodes; r++) forward.AddRow([42 + r], past, rows[r], wantLogits: true, sequenceId: r);
        forward.AddRow(prompt, 0, rows[decodes], wantLogits: true, sequenceId: 1000 + i);
        var t = Stopwatch.GetTimestamp();
        runner.Forward(forward, logits);
        if (i >= 5) times.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
    }
    times.Sort();
    Console.WriteLine($"{decodes} decodes at past {past} + one {prefill}-token prefill: step p50 {times[times.Count / 2]:F2} ms");
}
