// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Hosting;

namespace InferenceServer.Tests.Hosting;

/// <summary>What a <c>--model &lt;checkpoint&gt;</c> start builds for its <c>--dtype</c> and <c>--device</c>, and where it caches it.</summary>
public sealed class CheckpointBuildsTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("checkpoint-builds-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    [Theory]
    [InlineData("auto", "auto", "fp32", "cpu")]
    [InlineData("auto", "cpu", "fp32", "cpu")]
    [InlineData("auto", "cuda", "fp16", "cuda")]
    [InlineData("auto", "cuda:1", "fp16", "cuda")]
    [InlineData("auto", "CUDA", "fp16", "cuda")]
    [InlineData("bf16", "cuda:0", "bf16", "cuda")]
    [InlineData("fp32", "cuda", "fp32", "cuda")]
    [InlineData("fp16", "cpu", "fp16", "cpu")]
    public void BuildTarget_AutoIsFp16OnCudaElseFp32_AndAutoDeviceBuildsForTheCpu(string dtype, string device, string expectedDType, string expectedDevice)
        => Assert.Equal((expectedDType, expectedDevice), CheckpointBuilds.BuildTarget(dtype, device));

    [Fact]
    public void BuildTarget_BadDevice_Throws()
    {
        var ex = Assert.Throws<StartupException>(() => CheckpointBuilds.BuildTarget("auto", "tpu"));
        Assert.Contains("--device must be auto, cpu, cuda or cuda:N", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fingerprint_DiffersByDTypeAndDevice_AndNamesThem()
    {
        File.WriteAllText(Path.Combine(_work, "config.json"), "{}");
        var cpu = CheckpointBuilds.Fingerprint(_work, "fp32", "cpu");
        var cudaFp32 = CheckpointBuilds.Fingerprint(_work, "fp32", "cuda");
        var fp16 = CheckpointBuilds.Fingerprint(_work, "fp16", "cuda");
        var bf16 = CheckpointBuilds.Fingerprint(_work, "bf16", "cuda");
        Assert.Equal(4, new HashSet<string>([cpu, cudaFp32, fp16, bf16]).Count);
        Assert.Contains("-fp16-cuda-", fp16, StringComparison.Ordinal);
        Assert.Equal(cpu, CheckpointBuilds.Fingerprint(_work, "fp32", "cpu"));
    }

    [Fact]
    public void Fp16OnTheCpu_FailsAtStartSayingWhatToPass()
    {
        File.WriteAllText(Path.Combine(_work, "config.json"), "{}");
        File.WriteAllText(Path.Combine(_work, "model.safetensors"), string.Empty);
        var ex = Assert.Throws<StartupException>(() => CheckpointBuilds.Resolve(_work, Path.Combine(_work, "cache"), "fp16", "cpu", static _ => { }));
        Assert.Contains("--dtype fp16 needs --device cuda", ex.Message, StringComparison.Ordinal);
    }
}
