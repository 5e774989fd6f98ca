// Profiles one decode step of the default model on the CPU: where the time goes between assembling the dense past
// tensors (gather), ONNX Runtime, writing the new KV back (scatter) and sampling. Run from the repository root:
//   dotnet run bench/profile-step/profile-step.cs -c Release [model-dir] [intra-op-threads] [spinning never|step|always]
#:project ../../src/InferenceServer.Onnx/InferenceServer.Onnx.csproj
#:property TreatWarningsAsErrors=false
#:property GenerateDocumentationFile=false
using System.Diagnostics;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

var root = args.Length > 0 ? args[0] : "models/tiny-pycoder";
var threads = args.Length > 1 ? int.Parse(args[1]) : 0;
var spin = args.Length > 2 ? Enum.Parse<OnnxSpinning>(args[2], ignoreCase: true) : OnnxSpinning.Never;
Console.WriteLine($"intra-op threads {threads} (0 = all cores), spinning {spin}");
using var model = OnnxDecoderModel.Open(ModelPackage.Load(root), new OnnxSessionOptions { IntraOpThreads = threads, Spinning = spin });
const int BlockSize = 16;
const int Steps = 30;
foreach (var reuse in new[] { false, true })
{
Console.WriteLine(reuse ? "decode steps over the same sequences (present fed back as past):" : "every step assembled from the KV pages (gather):");
foreach (var (batch, past) in new[] { (1, 128), (1, 1024), (16, 256), (64, 256) })
{
    var blocksPerRow = (past + Steps + 6 + BlockSize - 1) / BlockSize;
    using var runner = new DenseKvRunner(model, batch * blocksPerRow, BlockSize);
    var forward = new ForwardBatch();
    var logits = new float[batch * model.Spec.VocabularySize];
    var rows = Enumerable.Range(0, batch).Select(r => Enumerable.Range(r * blocksPerRow, blocksPerRow).ToArray()).ToArray();
    var step = 0;
    void Build()
    {
        forward.Clear();
        for (var r = 0; r < batch; r++)
        {
            forward.AddRow([42 + r], past + step, rows[r], wantLogits: true, sequenceId: reuse ? r : -1);
        }

        step++;
    }

    for (var i = 0; i < 5; i++)
    {
        Build();
        runner.Forward(forward, logits);
    }

    var (gather, run, scatter) = (0.0, 0.0, 0.0);
    var total = Stopwatch.StartNew();
    for (var i = 0; i < Steps; i++)
    {
        Build();
        var timing = runner.ForwardTimed(forward, logits);
        gather += timing.Gather;
        run += timing.Run;
        scatter += timing.Scatter;
    }

    var ms = total.Elapsed.TotalMilliseconds / Steps;
    Console.WriteLine($"batch {batch,3} past {past,5}: step {ms,7:F2} ms = gather {gather / Steps,6:F2} + onnxruntime {run / Steps,7:F2} + scatter/logits {scatter / Steps,5:F2} (+ rest); {batch * 1000 / ms,8:F0} tokens/s");
}
}
