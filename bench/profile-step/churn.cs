// The dense runner's decode steps while the batch changes as the engine's does: 64 rows decoding at past ~256, and every
// CHURN steps the first row finishes and a new one (past 256, its pages already written) joins at the end. Prints the
// mean step and the part of it spent assembling the rows' past (a new or reshaped decode bucket). Run from the
// repository root:
//   dotnet run bench/profile-step/churn.cs -c Release
#:project ../../src/InferenceServer.Onnx/InferenceServer.Onnx.csproj
#:property TreatWarningsAsErrors=false
#:property GenerateDocumentationFile=false
using System.Diagnostics;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

using var model = OnnxDecoderModel.Open(ModelPackage.Load("models/tiny-pycoder"), new OnnxSessionOptions());
const int BlockSize = 16, Rows = 64, Past = 256, Steps = 200;
foreach (var churn in new[] { 2, 8, 1000 })
{
    var blocksPerSeq = (Past + Steps + BlockSize) / BlockSize;
    var sequences = Rows + Steps / churn + 1;
    using var runner = new DenseKvRunner(model, sequences * blocksPerSeq, BlockSize);
    var logits = new float[Rows * model.Spec.VocabularySize];
    var batch = new ForwardBatch();
    var live = new List<(int Id, int Past)>();
    for (var s = 0; s < Rows; s++) live.Add((s, Past));
    var nextId = Rows;
    var sw = new Stopwatch();
    var gather = 0.0;
    for (var step = 0; step < Steps; step++)
    {
        if (step > 0 && step % churn == 0) { live.RemoveAt(0); live.Add((nextId++, Past)); }
        batch.Clear();
        foreach (var (id, past) in live) batch.AddRow([42 + id % 100], past, Enumerable.Range(id * blocksPerSeq, blocksPerSeq).ToArray(), wantLogits: true, sequenceId: id);
        sw.Start();
        gather += runner.ForwardTimed(batch, logits).Gather;
        sw.Stop();
        for (var i = 0; i < live.Count; i++) live[i] = (live[i].Id, live[i].Past + 1);
    }
    Console.WriteLine($"churn every {churn,4} steps: mean step {sw.Elapsed.TotalMilliseconds / Steps:F2} ms, of which assembling the past {gather / Steps:F3} ms");
}
