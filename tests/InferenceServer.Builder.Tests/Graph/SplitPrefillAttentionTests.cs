// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// <c>--prefill-attention compute</c> (ADR 0005) on the CPU split runner: rows that start at position 0 attend over
/// themselves through <c>PromptAttention</c> (GroupQueryAttention on the compute device, here ONNX Runtime's CPU
/// provider) while the host backends only append their KV. The host backends then give those rows nothing, so a prompt
/// attention that did not run, or wrote the wrong rows, shows in the first-step logits; KV appended wrongly shows in the
/// greedy decodes that read it, on one backend and with blocks alternating between two (the LSE merge), sequential and
/// as two micro-batches; a chunked prompt takes the compute path for its first chunk and the host for the rest.
/// </summary>
public sealed class SplitPrefillAttentionTests
{
    private const int BlockSize = SplitGraphTests.BlockSize;

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("qwen2")]
    [InlineData("llama-pruned")]
    [InlineData("llama-moh")]
    public void FirstStepLogits_PromptsAttendedOnTheComputeDevice_MatchTransformers(string fixture)
    {
        using var model = Open(fixture, AttentionOverlap.Off, "cpu");
        using var runner = model.CreateRunner(256, BlockSize);
        SplitGraphTests.AssertFirstStepLogits(runner, fixture);
    }

    [Theory]
    [InlineData("llama-gqa", 1, AttentionOverlap.Off)]
    [InlineData("llama-moh", 1, AttentionOverlap.Off)]
    [InlineData("llama-gqa", 2, AttentionOverlap.Off)]
    [InlineData("qwen2", 2, AttentionOverlap.Off)]
    [InlineData("llama-pruned", 2, AttentionOverlap.Off)]
    [InlineData("llama-moh", 2, AttentionOverlap.Off)]
    [InlineData("llama-gqa", 2, AttentionOverlap.On)]
    [InlineData("llama-moh", 1, AttentionOverlap.On)]
    public void Greedy_StaggeredArrivals_AppendOnlyPromptsServeTheDecodes(string fixture, int backends, AttentionOverlap overlap)
    {
        // Case r joins at step 2r, its prompt (attended on the compute device) packed beside the others' decodes (attended
        // on the host over KV the prompts appended); with two backends every sequence's blocks alternate between them.
        using var model = Open(fixture, overlap, [.. Enumerable.Repeat("cpu", backends)]);
        using var runner = model.CreateRunner(512, BlockSize);
        SplitGraphTests.AssertStaggeredGreedy(runner, fixture, backends);
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("llama-moh")]
    public void Greedy_ChunkedPrefill_FirstChunkOnTheComputeDevice_RestOnTheHost(string fixture)
    {
        using var model = Open(fixture, AttentionOverlap.Off, "cpu", "cpu");
        using var runner = model.CreateRunner(128, BlockSize);
        SplitGraphTests.AssertChunkedGreedy(runner, fixture);
    }

    [Fact]
    public void Open_LatentAttentionModel_SaysPrefillAttentionComputeDoesNotExpressIt()
    {
        var error = Assert.Throws<ExecutionProviderException>(() => Open("deepseek-v3-mla", AttentionOverlap.Off, "cpu"));
        Assert.Contains("--prefill-attention compute", error.Message, StringComparison.Ordinal);
        Assert.Contains("MLA", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("llama-gqa")]
    [InlineData("deepseek-v3-mla")]
    public void Auto_OnTheCpu_LeavesPromptsToTheHost(string fixture)
    {
        // auto (the default) takes prompts to a CUDA compute device only: on the CPU there is nothing to gain, and a model
        // GroupQueryAttention does not express opens as before.
        using var model = DecoderModels.Open(
            ModelPackage.Load(BuiltModels.Get(fixture, split: true)),
            new OnnxSessionOptions { Device = "cpu", AttentionDevices = ["cpu"], PrefillAttentionOnCompute = null });
        Assert.False(Assert.IsType<SplitDecoderModel>(model).PrefillOnCompute);
    }

    private static IDecoderModel Open(string fixture, AttentionOverlap overlap, params string[] attentionDevices) =>
        DecoderModels.Open(
            ModelPackage.Load(BuiltModels.Get(fixture, split: true)),
            new OnnxSessionOptions { Device = "cpu", AttentionDevices = attentionDevices, AttentionOverlap = overlap, PrefillAttentionOnCompute = true, PrefillAttentionMinTokens = 1 });
}
