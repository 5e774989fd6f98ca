// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>
/// <see cref="NativeEnvironment"/>: variables that ONNX Runtime's native kernels read, set where they read them (on Unix
/// .NET's own environment copy is not what <c>getenv</c> sees).
/// </summary>
public sealed class NativeEnvironmentTests
{
    [Fact]
    public void Set_IsSeenByNativeGetenv_AndByDotNet()
    {
        var name = "INFERENCE_SERVER_TEST_" + Guid.NewGuid().ToString("N");
        Assert.Null(NativeEnvironment.Get(name));
        NativeEnvironment.Set(name, "on");
        Assert.Equal("on", NativeEnvironment.Get(name));
        Assert.Equal("on", Environment.GetEnvironmentVariable(name));
    }

    [Fact]
    public void DeterministicModel_FixesOnnxRuntimesMoeTactic()
    {
        // --deterministic: the MoE kernel's GEMM tactic must not depend on the step's token count (batch invariance).
        using var model = DecoderModels.Open(ModelPackage.Load(FixturePaths.Fixture("llama-gqa")), new OnnxSessionOptions { Device = "cpu", Deterministic = true });
        Assert.Equal("1", NativeEnvironment.Get(NativeEnvironment.FixedMoeTactic));
    }
}
