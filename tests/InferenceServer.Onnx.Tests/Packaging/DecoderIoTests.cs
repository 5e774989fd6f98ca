using InferenceServer.Onnx.Packaging;

namespace InferenceServer.Onnx.Tests.Packaging;

/// <summary><see cref="ModelPackage.Io"/>: the dense graph's I/O names and row layout from <c>genai_config.json</c>.</summary>
public sealed class DecoderIoTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("decoder-io-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void GenAiBuilderConfig_NamesAreRead_AndRowsAreContiguous()
    {
        var package = Load("""
            {"model": {"type": "llama", "decoder": {
              "inputs": {"input_ids": "ids", "attention_mask": "mask", "seqlens_k": "lens", "total_sequence_length": "total",
                         "past_key_names": "past.%d.k", "past_value_names": "past.%d.v"},
              "outputs": {"logits": "scores", "present_key_names": "present.%d.k", "present_value_names": "present.%d.v"}}}}
            """);
        var io = package.Io;
        Assert.Null(package.GraphKind);
        Assert.True(io.ContiguousRows);
        Assert.Equal(("ids", "mask", "position_ids", "lens", "total"), (io.InputIds, io.AttentionMask, io.PositionIds, io.SeqlensK, io.TotalSequenceLength));
        Assert.Equal(("past.12.k", "past.12.v"), (DecoderIo.Format(io.PastKeyNames, 12), DecoderIo.Format(io.PastValueNames, 12)));
        Assert.Equal(("scores", "present.0.k", "present.0.v"), (io.Logits, DecoderIo.Format(io.PresentKeyNames, 0), DecoderIo.Format(io.PresentValueNames, 0)));
    }

    [Theory]
    [InlineData("dense-v1", false)]
    [InlineData("paged-v1", false)]
    [InlineData("genai-v1", true)]
    public void ServerBuilderSection_DecidesTheLayout(string graph, bool contiguous)
    {
        var package = Load("""{"model": {"decoder": {"inputs": {"input_ids": "input_ids"}}}, "inference_server": {"graph": """ + "\"" + graph + "\"}}");
        Assert.Equal(graph, package.GraphKind);
        Assert.Equal(contiguous, package.Io.ContiguousRows);
    }

    [Fact]
    public void NoGenAiConfig_IsTheOptimumContract()
    {
        var package = Load(null);
        Assert.Same(DecoderIo.Optimum, package.Io);
        Assert.False(package.Io.ContiguousRows);
        Assert.Equal("past_key_values.3.value", DecoderIo.Format(package.Io.PastValueNames, 3));
    }

    [Fact]
    public void MalformedGenAiConfig_NamesTheFile()
    {
        var ex = Assert.Throws<ModelPackageException>(() => Load("{ not json"));
        Assert.Contains("genai_config.json", ex.Message, StringComparison.Ordinal);
    }

    private ModelPackage Load(string? genAiConfig)
    {
        File.Copy(Path.Combine(FixturePaths.Fixture("llama-gqa"), "config.json"), Path.Combine(_folder, "config.json"), overwrite: true);
        File.WriteAllBytes(Path.Combine(_folder, "model.onnx"), []);
        if (genAiConfig is not null)
        {
            File.WriteAllText(Path.Combine(_folder, "genai_config.json"), genAiConfig);
        }

        return ModelPackage.Load(_folder);
    }
}
