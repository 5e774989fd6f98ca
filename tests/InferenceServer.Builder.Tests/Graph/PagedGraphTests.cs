// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using InferenceServer.Builder.Graph;
using InferenceServer.Builder.Onnx.Proto;
using InferenceServer.Builder.Safetensors;
using InferenceServer.Onnx.Packaging;
using DataType = InferenceServer.Builder.Onnx.Proto.TensorProto.Types.DataType;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// The paged graph of ADR 0003 as written (PagedAttention has no CPU kernel, so these read the model, not run it): the
/// contract's I/O, one PagedAttention node per attention layer wired in the contract's order, weights and RoPE tables
/// that are exactly the fp16/bf16 conversion of the checkpoint's and the dense builder's, and the metadata.
/// </summary>
public sealed class PagedGraphTests
{
    /// <summary>head_dim of every fixture used here (hidden 64, 4 heads).</summary>
    private const long HeadDim = 16;

    /// <summary>Each fixture in fp16 and bf16.</summary>
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var fixture in new[] { "llama-gqa", "qwen2", "llama-pruned", "llama-moh" })
        {
            foreach (var dtype in new[] { "fp16", "bf16" })
            {
                data.Add(fixture, dtype);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Io_IsTheContracts(string fixture, string dtype)
    {
        var model = Load(fixture, dtype);
        var t = (int)(dtype == "fp16" ? DataType.Float16 : DataType.Bfloat16);
        var config = ReadConfig(fixture);
        var kv = KvHeads(fixture);
        var headDim = HeadDim;
        List<(string Name, int Type, string[] Dims)> inputs =
        [
            ("input_ids", (int)DataType.Int64, ["num_tokens"]),
            ("cumulative_sequence_length", (int)DataType.Int32, ["batch_size_plus_1"]),
            ("past_seqlens", (int)DataType.Int32, ["batch_size"]),
            ("block_table", (int)DataType.Int32, ["batch_size", "max_blocks"]),
            ("logits_indices", (int)DataType.Int64, ["num_logits"]),
            ("attention_metadata", (int)DataType.Int32, ["2"]),
        ];
        List<(string Name, int Type, string[] Dims)> outputs =
        [
            ("logits", (int)DataType.Float, ["num_logits", ((long)config["vocab_size"]!).ToString(CultureInfo.InvariantCulture)]),
            ("next_tokens", (int)DataType.Int64, ["num_logits"]),
        ];
        for (var i = 0; i < kv.Length; i++)
        {
            string[] pool = ["num_blocks", "block_size", kv[i].KvHeads.ToString(CultureInfo.InvariantCulture), headDim.ToString(CultureInfo.InvariantCulture)];
            inputs.Add(($"key_cache.{i}", t, pool));
            inputs.Add(($"value_cache.{i}", t, pool));
            outputs.Add(($"key_cache_out.{i}", t, pool));
            outputs.Add(($"value_cache_out.{i}", t, pool));
        }

        Assert.Equal(inputs.Select(Describe), model.Graph.Input.Select(Describe));
        Assert.Equal(outputs.Select(Describe), model.Graph.Output.Select(Describe));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OnePagedAttentionNodePerAttentionLayer_InTheContractsInputOrder(string fixture, string dtype)
    {
        var model = Load(fixture, dtype);
        var kv = KvHeads(fixture);
        var headDim = HeadDim;
        var paged = model.Graph.Node.Where(n => n.OpType == "PagedAttention").ToList();
        Assert.Equal(kv.Length, paged.Count);
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "Attention");
        for (var i = 0; i < paged.Count; i++)
        {
            var node = paged[i];
            Assert.Equal("com.microsoft", node.Domain);
            Assert.Equal(
                ["key_cache." + i, "value_cache." + i, "cumulative_sequence_length", "past_seqlens", "block_table", "rope.cos_cache", "rope.sin_cache", "", "", "", "", "", "", "attention_metadata"],
                node.Input.Skip(3));
            Assert.Equal(["key_cache_out." + i, "value_cache_out." + i], node.Output.Skip(1));
            var attributes = node.Attribute.ToDictionary(a => a.Name);
            Assert.Equal(["do_rotary", "kv_num_heads", "num_heads", "rotary_interleaved", "scale"], attributes.Keys.Order(StringComparer.Ordinal));
            Assert.Equal(kv[i].Heads, attributes["num_heads"].I);
            Assert.Equal(kv[i].KvHeads, attributes["kv_num_heads"].I);
            Assert.Equal((float)(1.0 / Math.Sqrt(headDim)), attributes["scale"].F);
            Assert.Equal(1, attributes["do_rotary"].I);
            Assert.Equal(0, attributes["rotary_interleaved"].I);

            // query, key, value are the layer's projections (the packed [q | k | v] Gemm's Split, through q/k norm
            // Reshape when present); without a q/k norm or a MoH router, that Gemm of (heads + 2 kv_heads) x d columns is
            // the query itself, and key and value are left empty.
            var packed = fixture != "llama-moh";
            var projections = packed ? node.Input.Take(1) : node.Input.Take(3);
            var producers = projections.Select(input => model.Graph.Node.Single(n => n.Output.Contains(input)).OpType).ToList();
            Assert.All(producers, op => Assert.Contains(op, new[] { "Gemm", "Reshape", "Split" }));
            if (packed)
            {
                Assert.Equal(["", ""], node.Input.Skip(1).Take(2));
                var gemm = model.Graph.Node.Single(n => n.Output.Contains(node.Input[0]));
                var weight = model.Graph.Initializer.Single(w => w.Name == gemm.Input[1]);
                Assert.Equal([(kv[i].Heads + (2 * kv[i].KvHeads)) * headDim, weight.Dims[1]], weight.Dims);
            }
        }

        Assert.Contains(model.OpsetImport, o => o.Domain == string.Empty && o.Version == 23);
        Assert.Contains(model.OpsetImport, o => o.Domain == "com.microsoft" && o.Version == 1);
        Assert.Equal(11, model.IrVersion);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Graph_IsWiredInOrder_InT_WithLogitsRowsGatheredBeforeTheHead(string fixture, string dtype)
    {
        var model = Load(fixture, dtype);
        var t = (int)(dtype == "fp16" ? DataType.Float16 : DataType.Bfloat16);

        // Every node input exists before the node: a graph input, an initializer, or an earlier node's output.
        var known = new HashSet<string>(model.Graph.Input.Select(i => i.Name).Concat(model.Graph.Initializer.Select(i => i.Name)), StringComparer.Ordinal);
        foreach (var node in model.Graph.Node)
        {
            Assert.All(node.Input.Where(i => i.Length > 0), input => Assert.True(known.Contains(input), $"{node.Name} reads {input} before it exists"));
            known.UnionWith(node.Output);
        }

        Assert.All(model.Graph.Output, o => Assert.Contains(o.Name, known));

        // Every float initializer is in T; no fp32 weight meets a T activation.
        Assert.All(
            model.Graph.Initializer.Where(i => i.DataType is (int)DataType.Float or (int)DataType.Float16 or (int)DataType.Bfloat16),
            i => Assert.True(i.DataType == t || !i.Name.StartsWith("model.", StringComparison.Ordinal) && !i.Name.StartsWith("rope.", StringComparison.Ordinal) && !i.Name.StartsWith("lm_head", StringComparison.Ordinal), i.Name));
        Assert.All(model.Graph.Initializer.Where(i => i.DataLocation == TensorProto.Types.DataLocation.External), i => Assert.Equal(t, i.DataType));

        // RMSNorm is SimplifiedLayerNormalization with fp32 statistics; the dense Pow/ReduceMean form is gone.
        var norms = model.Graph.Node.Where(n => n.OpType == "SimplifiedLayerNormalization").ToList();
        Assert.NotEmpty(norms);
        Assert.All(norms, n =>
        {
            Assert.Equal(string.Empty, n.Domain);
            Assert.Equal(-1, n.Attribute.Single(a => a.Name == "axis").I);
            Assert.Equal(1, n.Attribute.Single(a => a.Name == "stash_type").I);
            Assert.Equal(1e-6f, n.Attribute.Single(a => a.Name == "epsilon").F);
        });
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "Pow");

        var gather = model.Graph.Node.Single(n => n.Input.Contains("logits_indices"));
        Assert.Equal("Gather", gather.OpType);
        Assert.Equal(0, gather.Attribute.Single(a => a.Name == "axis").I);
        Assert.Equal("final_norm", gather.Input[0]);
        var head = model.Graph.Node.Single(n => n.Input.Count > 0 && n.Input[0] == gather.Output[0]);
        Assert.Equal("Gemm", head.OpType);
        Assert.Equal(1, head.Attribute.Single(a => a.Name == "transB").I);
        Assert.Equal("lm_head.weight", head.Input[1]);
        var cast = model.Graph.Node.Single(n => n.Output.Contains("logits"));
        Assert.Equal("Cast", cast.OpType);
        Assert.Equal(head.Output[0], cast.Input[0]);
        Assert.Equal((long)DataType.Float, cast.Attribute.Single(a => a.Name == "to").I);
        var argmax = model.Graph.Node.Single(n => n.Output.Contains("next_tokens"));
        Assert.Equal("ArgMax", argmax.OpType);
        Assert.Equal(["logits"], argmax.Input);
        var argmaxAttributes = argmax.Attribute.ToDictionary(a => a.Name, a => a.I);
        Assert.Equal(1, argmaxAttributes["axis"]);
        Assert.Equal(0, argmaxAttributes["keepdims"]);
        Assert.Equal(0, argmaxAttributes["select_last_index"]);

        var embed = model.Graph.Node.Single(n => n.Input.Contains("input_ids"));
        Assert.Equal("Gather", embed.OpType);
        Assert.Equal(["model.embed_tokens.weight", "input_ids"], embed.Input);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Weights_AreTheCheckpointsConvertedToT(string fixture, string dtype)
    {
        var folder = BuiltModels.Get(fixture, dtype, "cuda");
        var model = Load(fixture, dtype);
        var type = dtype == "fp16" ? DataType.Float16 : DataType.Bfloat16;
        using var checkpoint = SafetensorsCheckpoint.Open(BuiltModels.Fixture(fixture));
        var names = new List<string>
        {
            "model.embed_tokens.weight", "lm_head.weight", "model.norm.weight", "model.layers.0.input_layernorm.weight",
            "model.layers.0.self_attn.o_proj.weight", "model.layers.0.mlp.down_proj.weight",
        };
        {
            // The packed projection is q, k and v's rows in that order (and their biases for qwen2).
            var packed = PackedRows(checkpoint, "model.layers.0.self_attn.", "weight");
            var converted = new ushort[packed.Length];
            ElementTypes.Convert(packed, converted, type);
            Assert.Equal(converted, ReadExternal(folder, model, "model.layers.0.self_attn.qkv_packed.weight"));
            if (fixture == "qwen2")
            {
                var bias = PackedRows(checkpoint, "model.layers.0.self_attn.", "bias");
                var convertedBias = new ushort[bias.Length];
                ElementTypes.Convert(bias, convertedBias, type);
                Assert.Equal(convertedBias, ReadExternal(folder, model, "model.layers.0.self_attn.qkv_packed.bias"));
            }
        }

        var checkedValues = 0;
        foreach (var name in names)
        {
            var expected = checkpoint.ReadFloat32(name, checkpoint.Info(name).Shape);
            var actual = ReadExternal(folder, model, name);
            Assert.Equal(expected.Length, actual.Length);
            var converted = new ushort[expected.Length];
            ElementTypes.Convert(expected, converted, type);
            Assert.Equal(converted, actual);
            checkedValues += actual.Length;
        }

        // And by hand for a few values, independent of the converter under test.
        var first = checkpoint.ReadFloat32("model.norm.weight", checkpoint.Info("model.norm.weight").Shape);
        var written = ReadExternal(folder, model, "model.norm.weight");
        for (var i = 0; i < 8; i++)
        {
            var back = type == DataType.Float16 ? (float)BitConverter.UInt16BitsToHalf(written[i]) : BitConverter.UInt32BitsToSingle((uint)written[i] << 16);
            var tolerance = Math.Abs(first[i]) * (type == DataType.Float16 ? 1.0 / 2048 : 1.0 / 256);
            Assert.True(Math.Abs(back - first[i]) <= tolerance, $"{first[i]} came back as {back}");
        }

        Assert.True(checkedValues > 10_000);
    }

    private static float[] PackedRows(SafetensorsCheckpoint checkpoint, string prefix, string kind) =>
        [.. new[] { "q_proj", "k_proj", "v_proj" }.SelectMany(p => checkpoint.ReadFloat32($"{prefix}{p}.{kind}", checkpoint.Info($"{prefix}{p}.{kind}").Shape))];

    [Theory]
    [MemberData(nameof(Cases))]
    public void RopeTables_AreTheDenseBuildersInT(string fixture, string dtype)
    {
        var dense = BuiltModels.Get(fixture);
        var denseModel = LoadFolder(dense);
        var folder = BuiltModels.Get(fixture, dtype, "cuda");
        var model = Load(fixture, dtype);
        foreach (var name in new[] { "rope.cos_cache", "rope.sin_cache" })
        {
            var denseTensor = denseModel.Graph.Initializer.Single(i => i.Name == name);
            var pagedTensor = model.Graph.Initializer.Single(i => i.Name == name);
            Assert.Equal(denseTensor.Dims, pagedTensor.Dims);
            Assert.Equal([512L, 8L], pagedTensor.Dims);
            var bytes = ReadBytes(dense, denseTensor);
            var expected = MemoryMarshal.Cast<byte, float>(bytes).ToArray();
            var converted = new ushort[expected.Length];
            ElementTypes.Convert(expected, converted, dtype == "fp16" ? DataType.Float16 : DataType.Bfloat16);
            Assert.Equal(converted, ReadExternal(folder, model, name));
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Metadata_NamesTheGraphAndDType_InTheModelAndGenAiConfig(string fixture, string dtype)
    {
        var model = Load(fixture, dtype);
        var metadata = model.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal("paged-v1", metadata["inferenceserver.graph"]);
        Assert.Equal(dtype, metadata["inferenceserver.dtype"]);
        Assert.Equal("com.microsoft.PagedAttention", metadata["inference_server.attention_op"]);

        var genai = JsonNode.Parse(File.ReadAllText(Path.Combine(BuiltModels.Get(fixture, dtype, "cuda"), "genai_config.json")))!;
        var server = genai["inference_server"]!;
        Assert.Equal("paged-v1", (string)server["graph"]!);
        Assert.Equal(dtype, (string)server["dtype"]!);
        Assert.Equal("cuda", (string)server["device"]!);
        Assert.Equal("paged-v1", ModelPackage.Load(BuiltModels.Get(fixture, dtype, "cuda")).GraphKind);
        var kv = KvHeads(fixture);
        var headDim = HeadDim;
        Assert.Equal(kv.Sum(k => 2 * k.KvHeads * headDim * 2), (long)server["kv_bytes_per_token"]!);
        var decoder = genai["model"]!["decoder"]!;
        Assert.Equal("key_cache.%d", (string)decoder["inputs"]!["past_key_names"]!);
        Assert.Equal("value_cache_out.%d", (string)decoder["outputs"]!["present_value_names"]!);
        Assert.Equal("logits_indices", (string)decoder["inputs"]!["logits_indices"]!);
    }

    [Fact]
    public void Moh_MasksPagedAttentionsOutput_WithAMaskFromFp32PreRotaryQueries()
    {
        var model = Load("llama-moh", "fp16");
        foreach (var layer in new[] { 0, 1, 2 })
        {
            var n = $"l{layer}_";
            var paged = model.Graph.Node.Single(x => x.Name == n + "attention");
            var qCast = model.Graph.Node.Single(x => x.Name == n + "moh_q_float");
            Assert.Equal(paged.Input[0], qCast.Input[0]);
            Assert.Equal((long)DataType.Float, qCast.Attribute.Single(a => a.Name == "to").I);
            Assert.Contains(model.Graph.Node, x => x.Name == n + "moh_topk" && x.OpType == "TopK");
            var maskCast = model.Graph.Node.Single(x => x.Name == n + "moh_mask_t");
            Assert.Equal((long)DataType.Float16, maskCast.Attribute.Single(a => a.Name == "to").I);
            var mul = model.Graph.Node.Single(x => x.Name == n + "attention_moh");
            Assert.Equal(n + "moh_mask_t", mul.Input[1]);
            var view = model.Graph.Node.Single(x => x.Output.Contains(mul.Input[0]));
            Assert.Equal(paged.Output[0], view.Input[0]);
            var oProj = model.Graph.Node.Single(x => x.Name == n + "o_proj");
            Assert.Equal(n + "attention_2d", oProj.Input[0]);
        }
    }

    [Fact]
    public void Pruned_SkipsNoOpAttentionAndMlp_AndNarrowsTheMlp()
    {
        var model = Load("llama-pruned", "bf16");
        Assert.DoesNotContain(model.Graph.Node, n => n.Name.StartsWith("l1_attention", StringComparison.Ordinal));
        Assert.DoesNotContain(model.Graph.Node, n => n.Name.StartsWith("l2_gate", StringComparison.Ordinal));
        Assert.Equal([2 * 96L, 64L], model.Graph.Initializer.Single(i => i.Name == "model.layers.0.mlp.gate_up_packed.weight").Dims);
        Assert.Equal([32L + (2 * 16), 64L], model.Graph.Initializer.Single(i => i.Name == "model.layers.0.self_attn.qkv_packed.weight").Dims);
    }

    [Fact]
    public void Qwen3_NormsEachHeadOnA3DView_BeforePagedAttention()
    {
        var model = BuildVariant("qwen3", "bf16");
        var paged = model.Graph.Node.Single(n => n.Name == "l1_attention");
        foreach (var (input, heads) in new[] { (paged.Input[0], 4L), (paged.Input[1], 2L) })
        {
            var back = model.Graph.Node.Single(n => n.Output.Contains(input));
            Assert.Equal("Reshape", back.OpType);
            Assert.Equal([-1L, heads * 16], Int64Constant(model, back.Input[1]));
            var norm = model.Graph.Node.Single(n => n.Output.Contains(back.Input[0]));
            Assert.Equal("SimplifiedLayerNormalization", norm.OpType);
            Assert.StartsWith("model.layers.1.self_attn.", norm.Input[1], StringComparison.Ordinal);
            var view = model.Graph.Node.Single(n => n.Output.Contains(norm.Input[0]));
            Assert.Equal([-1L, heads, 16L], Int64Constant(model, view.Input[1]));
            var split = model.Graph.Node.Single(n => n.Output.Contains(view.Input[0]));
            Assert.Equal("Split", split.OpType);
            Assert.Equal("Gemm", model.Graph.Node.Single(n => n.Output.Contains(split.Input[0])).OpType);
        }
    }

    [Fact]
    public void TiedEmbeddings_LmHeadIsTheEmbedding()
    {
        var model = BuildVariant("tied", "fp16");
        Assert.DoesNotContain(model.Graph.Initializer, i => i.Name == "lm_head.weight");
        Assert.Equal("model.embed_tokens.weight", model.Graph.Node.Single(n => n.Name == "lm_head").Input[1]);
    }

    [Fact]
    public void Phi3_FusedQkvIsPagedAttentionsPackedQuery()
    {
        var model = BuildVariant("phi3", "fp16");
        Assert.DoesNotContain(model.Graph.Node, n => n.Name == "l0_qkv_split");
        var attention = model.Graph.Node.Single(n => n.Name == "l0_attention");
        var gemm = model.Graph.Node.Single(n => n.Output.Contains(attention.Input[0]));
        Assert.Equal("model.layers.0.self_attn.qkv_proj.weight", gemm.Input[1]);
        Assert.Equal(["", ""], attention.Input.Skip(1).Take(2));
    }

    [Fact]
    public void PartialRotary_CosSinTablesAreRotaryDimWide_AndTheDenseBuilders()
    {
        var model = BuildVariant("llama3-partial", "fp16");
        var dense = LoadFolder(BuiltModels.Get("llama-gqa"));
        var cos = model.Graph.Initializer.Single(i => i.Name == "rope.cos_cache");
        Assert.Equal([512L, 4L], cos.Dims);
        Assert.NotEqual(dense.Graph.Initializer.Single(i => i.Name == "rope.cos_cache").Dims, cos.Dims);
    }

    [Theory]
    [InlineData("fp16", "cpu", "--dtype fp16 needs --device cuda")]
    [InlineData("bf16", "cpu", "--dtype bf16 needs --device cuda")]
    [InlineData("fp8", "cuda", "--dtype fp8: not supported: ONNX Runtime has no weight-only fp8 MatMul")]
    [InlineData("fp4", "cuda", "--dtype fp4: unknown; use fp32, fp16, bf16 or int4")]
    [InlineData("fp32", "tpu", "--device tpu: unknown; use cpu or cuda")]
    public void BadOptions_SayWhatToPass(string dtype, string device, string message)
    {
        var ex = Assert.Throws<ModelBuildException>(() => ModelBuilder.Build(new BuildOptions
        {
            CheckpointDirectory = BuiltModels.Fixture("llama-gqa"),
            OutputDirectory = BuiltModels.TempDirectory("bad-options"),
            DType = dtype,
            Device = device,
        }));
        Assert.StartsWith(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fp32OnCuda_IsTheDenseGraph()
    {
        var model = LoadFolder(BuiltModels.Get("llama-gqa", "fp32", "cuda"));
        Assert.Equal(3, model.Graph.Node.Count(n => n.OpType == "Attention"));
        var metadata = model.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal("dense-v1", metadata["inferenceserver.graph"]);
        Assert.Equal("fp32", metadata["inferenceserver.dtype"]);
    }

    private static ModelProto BuildVariant(string variant, string dtype)
    {
        var output = BuiltModels.TempDirectory($"paged-variant-{variant}-{dtype}");
        ModelBuilder.Build(new BuildOptions { CheckpointDirectory = VariantTests.MakeVariant(variant, $"paged-variant-checkpoint-{variant}-{dtype}"), OutputDirectory = output, DType = dtype, Device = "cuda" });
        return LoadFolder(output);
    }

    private static long[] Int64Constant(ModelProto model, string name) =>
        MemoryMarshal.Cast<byte, long>(model.Graph.Initializer.Single(i => i.Name == name).RawData.Span).ToArray();

    private static (long Heads, long KvHeads)[] KvHeads(string fixture) => fixture switch
    {
        "llama-pruned" => [(2, 1), (4, 2)],
        _ => [(4, 2), (4, 2), (4, 2)],
    };

    private static JsonNode ReadConfig(string fixture) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(BuiltModels.Fixture(fixture), "config.json")))!;

    private static string Describe((string Name, int Type, string[] Dims) value) => $"{value.Name}:{value.Type}:[{string.Join(",", value.Dims)}]";

    private static string Describe(ValueInfoProto value) =>
        $"{value.Name}:{value.Type.TensorType.ElemType}:[{string.Join(",", value.Type.TensorType.Shape.Dim.Select(d => d.HasDimParam ? d.DimParam : d.DimValue.ToString(CultureInfo.InvariantCulture)))}]";

    private static ushort[] ReadExternal(string folder, ModelProto model, string name)
    {
        var tensor = model.Graph.Initializer.Single(i => i.Name == name);
        return MemoryMarshal.Cast<byte, ushort>(ReadBytes(folder, tensor)).ToArray();
    }

    private static byte[] ReadBytes(string folder, TensorProto tensor)
    {
        var entries = tensor.ExternalData.ToDictionary(e => e.Key, e => e.Value);
        using var stream = File.OpenRead(Path.Combine(folder, entries["location"]));
        stream.Position = long.Parse(entries["offset"], CultureInfo.InvariantCulture);
        var bytes = new byte[int.Parse(entries["length"], CultureInfo.InvariantCulture)];
        stream.ReadExactly(bytes);
        return bytes;
    }

    private static ModelProto Load(string fixture, string dtype) => LoadFolder(BuiltModels.Get(fixture, dtype, "cuda"));

    private static ModelProto LoadFolder(string folder)
    {
        using var stream = File.OpenRead(Path.Combine(folder, "model.onnx"));
        return ModelProto.Parser.ParseFrom(stream);
    }
}
