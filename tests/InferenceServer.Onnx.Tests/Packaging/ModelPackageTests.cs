using InferenceServer.Onnx.Packaging;

namespace InferenceServer.Onnx.Tests.Packaging;

public sealed class ModelPackageTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("package-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void DefaultModel_LoadsWithTokenizer()
    {
        var package = ModelPackage.Load(FixturePaths.DefaultModel);
        Assert.Equal("tiny-pycoder", package.Name);
        Assert.NotNull(package.TokenizerPath);
        Assert.Equal(4096, package.Config.VocabularySize);
        Assert.Equal(2048, package.Config.MaxPositionEmbeddings);
        Assert.Equal([0], package.Config.EosTokenIds);
    }

    [Fact]
    public void Fixture_WithoutTokenizer_IsTokenOnly()
    {
        var package = ModelPackage.Load(FixturePaths.Fixture("qwen2"));
        Assert.Null(package.TokenizerPath);
        Assert.Equal(1e6, package.Config.RopeTheta);
    }

    [Fact]
    public void MissingFolder_NamesIt()
    {
        var ex = Assert.Throws<ModelPackageException>(() => ModelPackage.Load(Path.Combine(_folder, "nope")));
        Assert.Contains("nope", ex.Message);
    }

    [Fact]
    public void MissingConfig_NamesConfigJson()
    {
        var ex = Assert.Throws<ModelPackageException>(() => ModelPackage.Load(_folder));
        Assert.EndsWith("config.json", ex.File);
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("[]", "JSON object")]
    [InlineData("""{"num_hidden_layers": 2}""", "vocab_size")]
    [InlineData("""{"vocab_size": "big", "num_hidden_layers": 2}""", "vocab_size")]
    public void BadConfig_SaysWhat(string json, string expected)
    {
        File.WriteAllText(Path.Combine(_folder, "config.json"), json);
        var ex = Assert.Throws<ModelPackageException>(() => ModelPackage.Load(_folder));
        Assert.Contains(expected, ex.Message);
        Assert.Contains("config.json", ex.Message);
    }

    [Fact]
    public void GraphUnderOnnxFolder_IsFound()
    {
        File.Copy(Path.Combine(FixturePaths.Fixture("qwen2"), "config.json"), Path.Combine(_folder, "config.json"));
        Directory.CreateDirectory(Path.Combine(_folder, "onnx"));
        File.WriteAllText(Path.Combine(_folder, "onnx", "model.onnx"), "x");
        Assert.EndsWith(Path.Combine("onnx", "model.onnx"), ModelPackage.Load(_folder).GraphPath);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("""{"model": {"type": "llama"}}""", null)]
    [InlineData("""{"inference_server": {"graph": "paged-v1", "dtype": "fp16"}}""", "paged-v1")]
    [InlineData("""{"inference_server": {"graph": 3}}""", null)]
    public void GraphKind_IsWhatTheBuildersGenAiConfigRecords(string? genAiConfig, string? expected)
    {
        File.Copy(Path.Combine(FixturePaths.Fixture("qwen2"), "config.json"), Path.Combine(_folder, "config.json"));
        File.WriteAllText(Path.Combine(_folder, "model.onnx"), "x");
        if (genAiConfig is not null)
        {
            File.WriteAllText(Path.Combine(_folder, "genai_config.json"), genAiConfig);
        }

        Assert.Equal(expected, ModelPackage.Load(_folder).GraphKind);
    }

    [Fact]
    public void BadGenAiConfig_NamesIt()
    {
        File.Copy(Path.Combine(FixturePaths.Fixture("qwen2"), "config.json"), Path.Combine(_folder, "config.json"));
        File.WriteAllText(Path.Combine(_folder, "model.onnx"), "x");
        File.WriteAllText(Path.Combine(_folder, "genai_config.json"), "{");
        var ex = Assert.Throws<ModelPackageException>(() => ModelPackage.Load(_folder));
        Assert.EndsWith("genai_config.json", ex.File);
        Assert.Contains("not valid JSON", ex.Message);
    }

    [Fact]
    public void RopeTheta_ReadFromEitherConvention()
    {
        var legacy = ModelConfig.Parse("""{"vocab_size": 10, "num_hidden_layers": 1, "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}""", "c.json");
        Assert.Equal(500000.0, legacy.RopeTheta);
        Assert.Equal("llama3", legacy.RopeType);
        var modern = ModelConfig.Parse("""{"vocab_size": 10, "num_hidden_layers": 1, "rope_parameters": {"rope_theta": 1000.0, "rope_type": "yarn"}}""", "c.json");
        Assert.Equal(1000.0, modern.RopeTheta);
        Assert.Equal("yarn", modern.RopeType);
        var eosList = ModelConfig.Parse("""{"vocab_size": 10, "num_hidden_layers": 1, "eos_token_id": [1, 7]}""", "c.json");
        Assert.Equal([1, 7], eosList.EosTokenIds);
    }
}
