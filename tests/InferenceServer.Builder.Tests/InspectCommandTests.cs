// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Inspection;

namespace InferenceServer.Builder.Tests;

public sealed class InspectCommandTests
{
    [Fact]
    public void BuiltPrunedModel_ReportsPerIndexLayoutAndAttentionNodes()
    {
        var inspection = ModelInspector.Inspect(BuiltModels.Get("llama-pruned"));
        Assert.Equal([new KvInputInfo(0, 1, 16, 1, 16, 4), new KvInputInfo(1, 2, 16, 2, 16, 4)], inspection.KvInputs);
        Assert.Equal((2 * 16 * 4) + (4 * 16 * 4), inspection.KvBytesPerToken);
        Assert.Equal(2, inspection.AttentionNodes.Count);
        Assert.Equal(new AttentionNodeInfo("l2_attention", "ai.onnx.Attention", 4, 2, "past_key_values.1.key", "present.1.key"), inspection.AttentionNodes[1]);
        Assert.Contains("ai.onnx:23", inspection.Opsets);
        Assert.Equal(new FileInfo(Path.Combine(BuiltModels.Get("llama-pruned"), "model.onnx.data")).Length, inspection.ExternalDataBytes, 64.0 * 64);
    }

    [Fact]
    public void PagedModel_ReportsGraphDTypeBlockLayoutAndPagedAttentionNodes()
    {
        var inspection = ModelInspector.Inspect(BuiltModels.Get("llama-pruned", "bf16", "cuda"));
        Assert.Equal("paged-v1", inspection.Graph);
        Assert.Equal("bf16", inspection.DType);
        Assert.Equal([new KvInputInfo(0, 1, 16, 1, 16, 2), new KvInputInfo(1, 2, 16, 2, 16, 2)], inspection.KvInputs);
        Assert.Equal(new AttentionNodeInfo("l2_attention", "com.microsoft.PagedAttention", 4, 2, "key_cache.1", "key_cache_out.1"), inspection.AttentionNodes[1]);
        Assert.Contains("com.microsoft:1", inspection.Opsets);
    }

    [Fact]
    public async Task Command_SaysTheGraphFlavor_AndWhichProviderRunsEachOp()
    {
        var stdout = new StringWriter();
        Assert.Equal(0, await InspectCommand.RunAsync([BuiltModels.Get("llama-gqa", "fp16", "cuda")], stdout, new StringWriter(), CancellationToken.None));
        var text = stdout.ToString();
        Assert.Contains("graph: paged-v1, dtype fp16", text, StringComparison.Ordinal);
        Assert.Contains("com.microsoft.PagedAttention x3 (CUDA only)", text, StringComparison.Ordinal);
        // Layer 0's input norm stands alone; the other six norms absorb the residual add before them (ADR 0007).
        Assert.Contains("ai.onnx.SimplifiedLayerNormalization x1 (CPU+CUDA)", text, StringComparison.Ordinal);
        Assert.Contains("com.microsoft.SkipSimplifiedLayerNormalization x6 (CPU+CUDA)", text, StringComparison.Ordinal);

        stdout = new StringWriter();
        Assert.Equal(0, await InspectCommand.RunAsync([BuiltModels.Get("llama-gqa")], stdout, new StringWriter(), CancellationToken.None));
        Assert.Contains("graph: dense-v1, dtype fp32", stdout.ToString(), StringComparison.Ordinal);
        Assert.Contains("ai.onnx.Attention x3 (CPU+CUDA)", stdout.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void TorchExport_HasNoFusedAttention_ButItsLayoutIsRead()
    {
        var inspection = ModelInspector.Inspect(Path.Combine(BuiltModels.Fixture("deepseek-v3-mla"), "model.onnx"));
        Assert.Empty(inspection.AttentionNodes);
        Assert.Equal(3 * (32 + 8) * 4, inspection.KvBytesPerToken);
        Assert.True(inspection.ParameterCount > 200_000);
        Assert.Equal("dense-v1", inspection.Graph);
        Assert.Equal("fp32", inspection.DType);
    }

    [Fact]
    public async Task Command_PrintsTheReport_AndRefusesWhatIsNotAModel()
    {
        var stdout = new StringWriter();
        Assert.Equal(0, await InspectCommand.RunAsync(["inspect", BuiltModels.Get("deepseek-v3-mla")], stdout, new StringWriter(), CancellationToken.None));
        Assert.Contains("kv cache: 3 indices, 480 bytes per token", stdout.ToString(), StringComparison.Ordinal);
        Assert.Contains("l0_attention: ai.onnx.Attention, 4 query heads, 1 kv heads", stdout.ToString(), StringComparison.Ordinal);

        var stderr = new StringWriter();
        Assert.Equal(1, await InspectCommand.RunAsync([Path.Combine(BuiltModels.Fixture("llama-gqa"), "config.json")], new StringWriter(), stderr, CancellationToken.None));
        Assert.Contains("not a valid ONNX model", stderr.ToString(), StringComparison.Ordinal);
        Assert.Equal(2, await InspectCommand.RunAsync([], new StringWriter(), new StringWriter(), CancellationToken.None));
    }
}
