using Google.Protobuf;
using InferenceServer.Builder.Onnx.Proto;
using InferenceServer.Onnx.Graph;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Graph;

/// <summary>The load-time graph rewrite (ADR 0004): what it changes, that the rewritten graph computes the same logits, and what it leaves alone.</summary>
public sealed class GraphRewriterTests
{
    [Theory]
    [InlineData("tiny-pycoder", 4)]
    [InlineData("llama-gqa", 3)]
    [InlineData("qwen2", 3)]
    public void GqaExports_EveryLayersKeyAndValueMatMulIsGrouped_AndTheRepeatIsGone(string fixture, int layers)
    {
        var path = Path.Combine(Folder(fixture), "model.onnx");
        var original = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var rewrite = GraphRewriter.Rewrite(path);

        Assert.NotNull(rewrite);
        Assert.Equal(2 * layers, rewrite.GroupedMatMuls);
        var rewritten = ModelProto.Parser.ParseFrom(rewrite.Model);
        Assert.Equal(rewrite.NodesAfter, rewritten.Graph.Node.Count);
        Assert.True(rewrite.NodesAfter < rewrite.NodesBefore, rewrite.Summary);

        // The KV repeat was the Expands that read an Unsqueeze of a KV tensor; the mask's Expands stay.
        Assert.Equal(Count(original, "Expand") - 2 * layers, Count(rewritten, "Expand"));
        Assert.Equal(Count(original, "MatMul"), Count(rewritten, "MatMul"));

        // Inputs and outputs are untouched: the runner feeds the rewritten graph exactly as the original.
        Assert.Equal(original.Graph.Input.Select(static i => i.Name), rewritten.Graph.Input.Select(static i => i.Name));
        Assert.Equal(original.Graph.Output.Select(static o => o.Name), rewritten.Graph.Output.Select(static o => o.Name));
    }

    [Theory]
    [InlineData("tiny-pycoder")]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    public void RewrittenGraph_GivesTheOriginalsLogits_OverPrefillAndDecodeSteps(string fixture)
    {
        var expected = RunSteps(fixture, rewrite: false, out var originalNote);
        var actual = RunSteps(fixture, rewrite: true, out var rewrittenNote);

        Assert.Null(originalNote);
        Assert.Contains("without the grouped-query repeat", rewrittenNote, StringComparison.Ordinal);
        Assert.Equal(expected.Count, actual.Count);
        for (var step = 0; step < expected.Count; step++)
        {
            for (var i = 0; i < expected[step].Length; i++)
            {
                Assert.True(Math.Abs(expected[step][i] - actual[step][i]) <= 1e-5f * Math.Max(1f, Math.Abs(expected[step][i])),
                    $"step {step} logit {i}: {actual[step][i]} vs {expected[step][i]}");
            }
        }
    }

    [Fact]
    public void MhaExport_HasNoRepeatToRemove()
    {
        // deepseek-v3-mla's attention has as many KV heads as query heads: transformers exports no repeat.
        var rewrite = GraphRewriter.Rewrite(Path.Combine(Folder("deepseek-v3-mla"), "model.onnx"));
        Assert.True(rewrite is null || rewrite.GroupedMatMuls == 0);
    }

    [Fact]
    public void ExternalData_IsReadFromTheModelsFolder()
    {
        // The same graph with its weights in model.onnx.data, as large exports are: the rewritten bytes have no folder of
        // their own, so the session must be told where the weights are.
        var directory = Directory.CreateTempSubdirectory("rewrite-external-");
        try
        {
            CopyJsonFiles(Folder("llama-gqa"), directory.FullName);

            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(Folder("llama-gqa"), "model.onnx")));
            using (var data = File.Create(Path.Combine(directory.FullName, "model.onnx.data")))
            {
                foreach (var initializer in model.Graph.Initializer.Where(static i => i.RawData.Length >= 1024))
                {
                    var offset = data.Position;
                    initializer.RawData.WriteTo(data);
                    initializer.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "model.onnx.data" });
                    initializer.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                    initializer.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = initializer.RawData.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                    initializer.DataLocation = TensorProto.Types.DataLocation.External;
                    initializer.RawData = ByteString.Empty;
                }
            }

            File.WriteAllBytes(Path.Combine(directory.FullName, "model.onnx"), model.ToByteArray());
            var expected = RunSteps("llama-gqa", rewrite: false, out _);
            var actual = RunSteps(directory.FullName, rewrite: true, out var note);

            Assert.NotNull(note);
            Assert.Equal(expected[^1].Length, actual[^1].Length);
            Assert.Equal(LogitMath.ArgMax(expected[^1]), LogitMath.ArgMax(actual[^1]));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SmallRepeatGraph_RewrittenComputesTheSameValues(bool transposed)
    {
        // Query heads 0 and 1 share KV head 0, heads 2 and 3 share KV head 1 (transformers' repeat_kv order); three query
        // rows, so a grouping that mixed rows and heads up would give other numbers.
        var original = RepeatGraph(unsqueezeAxis: 2, transposed);
        var rewrite = GraphRewriter.Rewrite(original.Clone());
        Assert.NotNull(rewrite);
        Assert.Equal(1, rewrite.GroupedMatMuls);

        var random = new Random(7);
        var q = Enumerable.Range(0, 4 * 3 * (transposed ? 8 : 5)).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        var k = Enumerable.Range(0, 2 * 5 * 8).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        var expected = Run(original.ToByteArray(), q, k, transposed);
        var actual = Run(rewrite.Model, q, k, transposed);
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-6f, $"value {i}: {actual[i]} vs {expected[i]}");
        }

        static float[] Run(byte[] graph, float[] q, float[] k, bool transposed)
        {
            using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(graph);
            using var qValue = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(q, [1, 4, 3, transposed ? 8 : 5]);
            using var kValue = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(k, [1, 2, 5, 8]);
            using var runOptions = new Microsoft.ML.OnnxRuntime.RunOptions();
            using var outputs = session.Run(runOptions, ["q", "k"], [qValue, kValue], ["scores"]);
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
    }

    [Fact]
    public void RepeatThatIsAlsoAGraphOutput_IsLeftAlone()
    {
        // The pattern, except that the repeated key is also an output: it must still be computed, so nothing changes.
        var model = RepeatGraph(unsqueezeAxis: 2);
        model.Graph.Output.Add(new ValueInfoProto { Name = "k_rep" });
        Assert.Null(GraphRewriter.Rewrite(model));
    }

    [Fact]
    public void RemovedValues_LoseTheirDeclaredShapes_AndUnusedConstantsGo()
    {
        var model = RepeatGraph(unsqueezeAxis: 2);
        model.Graph.ValueInfo.Add(new ValueInfoProto { Name = "k_expanded" });
        model.Graph.ValueInfo.Add(new ValueInfoProto { Name = "scores_unrelated_but_kept", Type = new TypeProto() });
        model.Graph.Node.Add(new NodeProto { OpType = "Identity", Name = "keep", Input = { "q" }, Output = { "scores_unrelated_but_kept" } });
        model.Graph.Output.Add(new ValueInfoProto { Name = "scores_unrelated_but_kept" });

        var rewrite = GraphRewriter.Rewrite(model);

        Assert.NotNull(rewrite);
        var rewritten = ModelProto.Parser.ParseFrom(rewrite.Model);
        Assert.DoesNotContain(rewritten.Graph.ValueInfo, static v => v.Name == "k_expanded");
        Assert.Contains(rewritten.Graph.ValueInfo, static v => v.Name == "scores_unrelated_but_kept");
        Assert.DoesNotContain(rewritten.Graph.Initializer, static i => i.Name is "axes" or "expand_shape" or "merged_shape");
        Assert.DoesNotContain(rewritten.Graph.Node, static n => n.OpType is "Expand" or "Unsqueeze");
    }

    [Fact]
    public void UnsqueezeOnAnotherAxis_IsLeftAlone()
    {
        Assert.Null(GraphRewriter.Rewrite(RepeatGraph(unsqueezeAxis: 1)));
        Assert.NotNull(GraphRewriter.Rewrite(RepeatGraph(unsqueezeAxis: 2)));
    }

    [Fact]
    public void KvHeadsThatAreNotDeclared_AreNotGuessed()
    {
        // Without a declared shape for the KV tensor the number of KV heads is unknown: the MatMul is not regrouped.
        var model = RepeatGraph(unsqueezeAxis: 2);
        model.Graph.Input.Remove(model.Graph.Input.Single(static i => i.Name == "k"));
        Assert.Null(GraphRewriter.Rewrite(model));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BrokenGraph_IsAModelPackageError_WithOrWithoutTheRewrite(bool rewrite)
    {
        var directory = Directory.CreateTempSubdirectory("rewrite-broken-");
        try
        {
            CopyJsonFiles(Folder("llama-gqa"), directory.FullName);

            File.WriteAllBytes(Path.Combine(directory.FullName, "model.onnx"), [0x0a, 0xff, 0xff, 0x12, 0x01]);
            var ex = Assert.Throws<ModelPackageException>(() => OnnxDecoderModel.Open(ModelPackage.Load(directory.FullName), new OnnxSessionOptions { RewriteGraph = rewrite }));
            Assert.Contains("model.onnx", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public void GraphOpenedWithTheRewriteOff_HasNoNote()
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(Folder("llama-gqa")), new OnnxSessionOptions { RewriteGraph = false });
        Assert.Null(model.GraphNote);
    }

    // Runs two rows of different lengths through a prefill step and then three decode steps (the present fed back as past,
    // rows of different past lengths), returning each step's logits.
    private static List<float[]> RunSteps(string fixtureOrFolder, bool rewrite, out string? note)
    {
        using var model = OnnxDecoderModel.Open(ModelPackage.Load(Folder(fixtureOrFolder)), new OnnxSessionOptions { RewriteGraph = rewrite, IntraOpThreads = 1 });
        note = model.GraphNote;
        var vocab = model.Spec.VocabularySize;
        using var runner = new DenseKvRunner(model, 16, 16);
        int[][] rows = [[5, 17, 301, 42, 9, 77, 12], [8, 3, 250]];
        int[][] blocks = [[0, 1], [2, 3]];
        var lengths = rows.Select(static r => r.Length).ToArray();
        var steps = new List<float[]>();
        var batch = new ForwardBatch();
        for (var r = 0; r < rows.Length; r++)
        {
            batch.AddRow(rows[r], 0, blocks[r], RowLogits.Last);
        }

        for (var step = 0; step < 4; step++)
        {
            var logits = new float[rows.Length * vocab];
            runner.Forward(batch, logits);
            steps.Add(logits);
            batch = new ForwardBatch();
            for (var r = 0; r < rows.Length; r++)
            {
                var next = LogitMath.ArgMax(logits.AsSpan(r * vocab, vocab));
                batch.AddRow([next], lengths[r], blocks[r], RowLogits.Last);
                lengths[r]++;
            }
        }

        return steps;
    }

    // The model folder's configuration files (config, generation config, reference), without its graph.
    private static void CopyJsonFiles(string from, string to)
    {
        foreach (var file in Directory.GetFiles(from, "*.json"))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }
    }

    private static string Folder(string fixtureOrFolder) =>
        Path.IsPathRooted(fixtureOrFolder) ? fixtureOrFolder
        : fixtureOrFolder == "tiny-pycoder" ? FixturePaths.DefaultModel
        : FixturePaths.Fixture(fixtureOrFolder);

    private static int Count(ModelProto model, string opType) => model.Graph.Node.Count(n => n.OpType == opType);

    // k [1, 2, 5, 8] repeated to 4 heads (Unsqueeze(axis) → Expand → Reshape), then q [1, 4, 3, 8] · its transpose
    // (scores [1, 4, 3, 5], as for the key) or q [1, 4, 3, 5] · it (as for the value, [1, 4, 3, 8]).
    private static ModelProto RepeatGraph(long unsqueezeAxis, bool transposed = true)
    {
        var graph = new GraphProto { Name = "repeat" };
        graph.Input.Add(Declared("q", 1, 4, 3, transposed ? 8 : 5));
        graph.Input.Add(Declared("k", 1, 2, 5, 8));
        graph.Output.Add(Declared("scores", 1, 4, 3, transposed ? 5 : 8));
        graph.Initializer.Add(Int64s("axes", unsqueezeAxis));
        graph.Initializer.Add(Int64s("expand_shape", 1, 2, 2, 5, 8));
        graph.Initializer.Add(Int64s("merged_shape", 1, 4, 5, 8));
        graph.Node.Add(Node("Unsqueeze", ["k", "axes"], "k_5d"));
        graph.Node.Add(Node("Expand", ["k_5d", "expand_shape"], "k_expanded"));
        graph.Node.Add(Node("Reshape", ["k_expanded", "merged_shape"], "k_rep"));
        if (transposed)
        {
            var transpose = Node("Transpose", ["k_rep"], "k_rep_t");
            transpose.Attribute.Add(new AttributeProto { Name = "perm", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 0, 1, 3, 2 } });
            graph.Node.Add(transpose);
        }

        graph.Node.Add(Node("MatMul", ["q", transposed ? "k_rep_t" : "k_rep"], "scores"));
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = 17 });
        return model;

        static NodeProto Node(string op, string[] inputs, string output) => new() { OpType = op, Name = output, Input = { inputs }, Output = { output } };

        static TensorProto Int64s(string name, params long[] values)
        {
            var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
            tensor.Dims.Add(values.Length);
            tensor.Int64Data.AddRange(values);
            return tensor;
        }

        static ValueInfoProto Declared(string name, params long[] dims)
        {
            var shape = new TensorShapeProto();
            shape.Dim.AddRange(dims.Select(static d => new TensorShapeProto.Types.Dimension { DimValue = d }));
            return new ValueInfoProto
            {
                Name = name,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
            };
        }
    }
}
