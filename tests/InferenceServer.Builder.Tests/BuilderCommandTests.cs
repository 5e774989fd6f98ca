// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.Json;

namespace InferenceServer.Builder.Tests;

public sealed class BuilderCommandTests
{
    [Fact]
    public async Task Build_WritesAServableFolder()
    {
        var output = BuiltModels.TempDirectory("command-qwen2");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await BuilderCommand.RunAsync(["build", "--checkpoint", BuiltModels.Fixture("qwen2"), "--out", output, "--dtype", "fp32"], stdout, stderr, CancellationToken.None);

        Assert.Equal(0, code);
        Assert.Contains("built qwen2 (dense-v1, fp32, cpu): 3 layers", stdout.ToString(), StringComparison.Ordinal);
        Assert.Equal(string.Empty, stderr.ToString());
        foreach (var name in new[] { "model.onnx", "model.onnx.data", "config.json", "generation_config.json", "genai_config.json" })
        {
            Assert.True(File.Exists(Path.Combine(output, name)), name);
        }

        using var genai = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "genai_config.json")));
        var decoder = genai.RootElement.GetProperty("model").GetProperty("decoder");
        Assert.Equal("past_key_values.%d.key", decoder.GetProperty("inputs").GetProperty("past_key_names").GetString());
        Assert.Equal(2, decoder.GetProperty("num_key_value_heads").GetInt32());
        var info = genai.RootElement.GetProperty("inference_server");
        Assert.Equal(3 * 2 * 2 * 16 * 4, info.GetProperty("kv_bytes_per_token").GetInt64());
        Assert.Equal("ai.onnx.Attention", info.GetProperty("attention_op").GetString());
    }

    [Theory]
    [InlineData(new string[0], "--checkpoint and --out are required")]
    [InlineData(new[] { "--checkpoint", "a" }, "--checkpoint and --out are required")]
    [InlineData(new[] { "--checkpoint", "a", "--out" }, "--out needs a value")]
    [InlineData(new[] { "--checkpoint", "a", "--out", "b", "--fast" }, "unknown argument '--fast'")]
    [InlineData(new[] { "--checkpoint", "a", "--out", "b", "--dtype", "fp8" }, "--dtype fp8: not supported: ONNX Runtime has no weight-only fp8 MatMul")]
    [InlineData(new[] { "--checkpoint", "a", "--out", "b", "--dtype", "fp4" }, "--dtype fp4: unknown; use fp32, fp16, bf16 or int4")]
    [InlineData(new[] { "--checkpoint", "a", "--out", "b", "--device", "rocm" }, "--device rocm: unknown; use cpu or cuda")]
    [InlineData(new[] { "--checkpoint", "a", "--out", "b", "--dtype", "fp16" }, "--dtype fp16 needs --device cuda")]
    [InlineData(new[] { "--checkpoint", "a", "--out", "b", "--dtype", "bf16", "--device", "cpu" }, "--dtype bf16 needs --device cuda")]
    [InlineData(new[] { "--checkpoint", "a", "--out", "b", "--dtype" }, "--dtype needs a value")]
    [InlineData(new[] { "--checkpoint", "a", "--out", "b", "--split", "--dtype", "int4", "--device", "cuda" }, "--split builds fp32, fp16 or bf16 segment graphs")]
    public async Task BadArguments_ExitTwoWithUsage(string[] args, string expected)
    {
        var stderr = new StringWriter();
        Assert.Equal(2, await BuilderCommand.RunAsync(args, new StringWriter(), stderr, CancellationToken.None));
        Assert.Contains(expected, stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains(BuilderCommand.Usage, stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("fp16")]
    [InlineData("bf16")]
    public async Task Build_Fp16AndBf16OnCuda_WriteThePagedGraph(string dtype)
    {
        var output = BuiltModels.TempDirectory("command-paged-" + dtype);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await BuilderCommand.RunAsync(["build", "--checkpoint", BuiltModels.Fixture("llama-gqa"), "--out", output, "--dtype", dtype, "--device", "cuda"], stdout, stderr, CancellationToken.None);
        Assert.True(code == 0, stderr.ToString());
        Assert.Contains($"built llama (paged-v1, {dtype}, cuda): 3 layers", stdout.ToString(), StringComparison.Ordinal);
        Assert.Contains("attention com.microsoft.PagedAttention", stdout.ToString(), StringComparison.Ordinal);
        // 3 layers x (key + value) x 2 kv heads x 16 x 2 bytes.
        Assert.Contains("384 KV bytes/token", stdout.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("no-such-folder", "fp32", "cpu", "checkpoint folder does not exist")]
    public async Task BuildFailure_ExitsOneWithTheReason(string fixture, string dtype, string device, string expected)
    {
        var stderr = new StringWriter();
        var args = new[] { "--checkpoint", BuiltModels.Fixture(fixture), "--out", BuiltModels.TempDirectory("command-fail"), "--dtype", dtype, "--device", device };
        Assert.Equal(1, await BuilderCommand.RunAsync(args, new StringWriter(), stderr, CancellationToken.None));
        Assert.Contains(expected, stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Build_Split_WritesTheSegmentsBesideTheFusedGraph_AndARebuildWithoutDropsThem()
    {
        var output = BuiltModels.TempDirectory("command-split");
        var stderr = new StringWriter();
        Assert.Equal(0, await BuilderCommand.RunAsync(["build", "--checkpoint", BuiltModels.Fixture("llama-pruned"), "--out", output, "--split"], new StringWriter(), stderr, CancellationToken.None));
        Assert.Equal(string.Empty, stderr.ToString());
        using (var genai = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "genai_config.json"))))
        {
            var split = genai.RootElement.GetProperty("inference_server").GetProperty("split");
            Assert.Equal(["segment.0.onnx", "segment.1.onnx", "segment.2.onnx"], split.GetProperty("segments").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal([0, 2], split.GetProperty("attention").EnumerateArray().Select(e => e.GetProperty("layer").GetInt32()));
        }

        Assert.True(File.Exists(Path.Combine(output, "model.onnx")));
        Assert.Equal(0, await BuilderCommand.RunAsync(["build", "--checkpoint", BuiltModels.Fixture("llama-pruned"), "--out", output], new StringWriter(), stderr, CancellationToken.None));
        Assert.Empty(Directory.GetFiles(output, "segment.*.onnx"));
    }

    [Fact]
    public async Task Build_MlaAttentionLatent_IsRefusedWhereTheKernelWouldRefuseIt_AndWhereItDoesNotApply()
    {
        var output = BuiltModels.TempDirectory("command-mla-latent");
        var stderr = new StringWriter();
        // The fixture's heads are kv_lora_rank 32 + rope 8 = 40 wide: ONNX Runtime's PagedAttention refuses them at the first
        // step ("head_size shall be a multiple of 16", H100, 2026-12-08), so the build does, naming the way that runs.
        Assert.Equal(1, await BuilderCommand.RunAsync(["build", "--checkpoint", BuiltModels.Fixture("deepseek-v3-mla"), "--out", output, "--dtype", "fp16", "--device", "cuda", "--mla-attention", "latent"], new StringWriter(), stderr, CancellationToken.None));
        Assert.Contains("kv_lora_rank + qk_rope_head_dim is 40; build with --mla-attention gather", stderr.ToString(), StringComparison.Ordinal);

        stderr = new StringWriter();
        Assert.Equal(2, await BuilderCommand.RunAsync(["build", "--checkpoint", BuiltModels.Fixture("deepseek-v3-mla"), "--out", output, "--mla-attention", "fused"], new StringWriter(), stderr, CancellationToken.None));
        Assert.Contains("--mla-attention fused: unknown", stderr.ToString(), StringComparison.Ordinal);
        stderr = new StringWriter();
        Assert.Equal(1, await BuilderCommand.RunAsync(["build", "--checkpoint", BuiltModels.Fixture("llama-gqa"), "--out", BuiltModels.TempDirectory("command-latent-gqa"), "--dtype", "fp16", "--device", "cuda", "--mla-attention", "latent"], new StringWriter(), stderr, CancellationToken.None));
        Assert.Contains("applies to the paged graph (--device cuda, fp16 or bf16) of an MLA checkpoint", stderr.ToString(), StringComparison.Ordinal);
    }
}
