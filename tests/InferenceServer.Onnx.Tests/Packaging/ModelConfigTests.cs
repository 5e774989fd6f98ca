// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Checkpoint;
using InferenceServer.Onnx.Packaging;

namespace InferenceServer.Onnx.Tests.Packaging;

/// <summary>The runtime's view of config.json, read by the builder's one parser in its serving mode.</summary>
public sealed class ModelConfigTests
{
    [Fact]
    public void Gpt2Names_AreRead_AndNothingIsRefusedForBeingUnbuildable()
    {
        var config = ModelConfig.Parse("""{"model_type":"gpt2","vocab_size":50257,"n_embd":768,"n_head":12,"n_layer":12,"num_hidden_layers":12,"n_positions":1024,"activation_function":"gelu_new","hidden_act":"gelu"}""", "c.json");
        Assert.Equal(("gpt2", 50257, 1024), (config.ModelType, config.VocabularySize, config.MaxPositionEmbeddings));
        Assert.Equal((768, 12, 64), (config.Checkpoint!.HiddenSize, config.Checkpoint.HeadCount, config.Checkpoint.HeadDim));
    }

    [Fact]
    public void TextConfig_HoldsTheLanguageModel_TokensComeFromTheTop()
    {
        var config = ModelConfig.Parse("""{"model_type":"llava","eos_token_id":[2,9],"text_config":{"vocab_size":100,"num_hidden_layers":2,"max_position_embeddings":4096}}""", "c.json");
        Assert.Equal(("llava", 100, 2, 4096), (config.ModelType, config.VocabularySize, config.LayerCount, config.MaxPositionEmbeddings));
        Assert.Equal([2, 9], config.EosTokenIds);
    }

    [Fact]
    public void Defaults_AreTheRuntimes_NotTheBuilders()
    {
        var config = ModelConfig.Parse("""{"vocab_size":10,"num_hidden_layers":1}""", "c.json");
        Assert.Equal(("unknown", 2048, 10000.0, "default"), (config.ModelType, config.MaxPositionEmbeddings, config.RopeTheta, config.RopeType));
        Assert.Equal(4096, DecoderConfig.Parse("""{"model_type":"llama","vocab_size":10,"num_hidden_layers":1,"hidden_size":8,"num_attention_heads":2,"intermediate_size":16}""", "c.json").MaxPositionEmbeddings);
    }

    [Fact]
    public void Malformed_NamesTheFileOnce()
    {
        var ex = Assert.Throws<ModelPackageException>(() => ModelConfig.Parse("""{"vocab_size":10,"num_hidden_layers":1,"eos_token_id":["x"]}""", "c.json"));
        Assert.Equal("c.json: eos_token_id must hold integers", ex.Message);
    }

    [Fact]
    public void BuilderAndRuntime_ReadTheSameCheckpointAlike()
    {
        var path = Path.Combine(FixturePaths.Fixture("deepseek-v3-mla"), "config.json");
        var json = File.ReadAllText(path);
        var built = DecoderConfig.Parse(json, path);
        var served = ModelConfig.Parse(json, path);
        Assert.Equal(built.VocabSize, served.VocabularySize);
        Assert.Equal(built.Layers, served.Checkpoint!.Layers);
        Assert.Equal(built.Mla, served.Checkpoint.Mla);
        Assert.Equal(built.Rope, served.Checkpoint.Rope);
    }
}
