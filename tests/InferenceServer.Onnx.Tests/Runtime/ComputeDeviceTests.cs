// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

public sealed class ComputeDeviceTests
{
    [Theory]
    [InlineData("cpu", ComputeDeviceKind.Cpu, 0, "cpu")]
    [InlineData(" CPU ", ComputeDeviceKind.Cpu, 0, "cpu")]
    [InlineData("cuda", ComputeDeviceKind.Cuda, 0, "cuda:0")]
    [InlineData("cuda:3", ComputeDeviceKind.Cuda, 3, "cuda:3")]
    [InlineData("CUDA:12", ComputeDeviceKind.Cuda, 12, "cuda:12")]
    public void Parse_ReadsTheDevice_AndPrintsItsName(string text, ComputeDeviceKind kind, int ordinal, string name)
    {
        var device = ComputeDevice.Parse(text);
        Assert.Equal(new ComputeDevice(kind, ordinal), device);
        Assert.Equal(name, device.ToString());
    }

    [Theory]
    [InlineData("auto")]
    [InlineData("gpu")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    [InlineData("")]
    public void Parse_Malformed_Throws(string text)
    {
        Assert.False(ComputeDevice.TryParse(text, out _));
        var ex = Assert.Throws<ExecutionProviderException>(() => ComputeDevice.Parse(text));
        Assert.Contains($"'{text}'", ex.Message);
    }

    [Theory]
    [InlineData("auto", true, "cuda:0")]
    [InlineData("", true, "cuda:0")]
    [InlineData("cpu", false, "cpu")]
    [InlineData("cuda", false, "cuda:0")]
    [InlineData("cuda:1", false, "cuda:1")]
    public void DeviceRequest_Parse_KeepsAutoApartFromTheDevice(string text, bool auto, string device)
    {
        var request = DeviceRequest.Parse(text);
        Assert.Equal(auto, request.Auto);
        Assert.Equal(device, request.Device.ToString());
    }

    [Fact]
    public void DeviceRequest_Malformed_NamesTheFlag()
    {
        var ex = Assert.Throws<ExecutionProviderException>(() => DeviceRequest.Parse("gpu"));
        Assert.Equal("--device must be auto, cpu, cuda or cuda:N, not 'gpu'", ex.Message);
    }

    [Theory]
    [InlineData("gpu", "--attention-device gpu: unknown; use cpu or cuda:N")]
    [InlineData("cuda:x", "--attention-device cuda:x: malformed; use cpu or cuda:N (N a device number)")]
    public void AttentionDevice_Unknown_SaysWhatToUse(string text, string message)
        => Assert.Equal(message, Assert.Throws<ExecutionProviderException>(() => SplitDecoderModel.ParseAttentionDevice(text)).Message);

    [Theory]
    [InlineData("cuda", 0)]
    [InlineData("cuda:1", 1)]
    public void AttentionDevice_Cuda_IsParsedOnce(string text, int ordinal)
        => Assert.Equal(ComputeDevice.Cuda(ordinal), SplitDecoderModel.ParseAttentionDevice(text));

    [Fact]
    public void AttentionDevice_Cpu_IsTheHost()
        => Assert.Equal(ComputeDevice.Cpu, SplitDecoderModel.ParseAttentionDevice("cpu"));

    [Fact]
    public void SessionFactory_HostHasNoDeviceMemory()
    {
        Assert.Null(OnnxSessionFactory.FreeMemory(ComputeDevice.Cpu));
        Assert.Null(OnnxSessionFactory.TotalMemory(ComputeDevice.Cpu));
        Assert.Equal(ComputeDevice.Cpu, new OnnxSessionFactory(new OnnxSessionOptions { Device = "cpu" }).Request.Device);
    }
}
