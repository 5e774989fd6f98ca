// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>What <c>--device</c> asks for: <c>auto</c>, <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
/// <param name="Auto">CUDA device 0 when its provider loads, else the CPU.</param>
/// <param name="Device">The device asked for (CUDA device 0 for <c>auto</c>: tried first).</param>
public readonly record struct DeviceRequest(bool Auto, ComputeDevice Device)
{
    /// <summary>A CUDA device, insisted on (with <see cref="Auto"/> false) or tried first.</summary>
    public bool Cuda => Device.IsCuda;

    /// <summary>The CUDA device ordinal (0 for <c>cuda</c> and <c>auto</c>).</summary>
    public int CudaDevice => Device.Ordinal;

    /// <summary>Parses <paramref name="text"/> (case and surrounding space ignored; empty means <c>auto</c>).</summary>
    /// <exception cref="ExecutionProviderException">Not one of the four forms.</exception>
    public static DeviceRequest Parse(string text)
    {
        var value = text.Trim();
        if (value.Length == 0 || value.Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            return new DeviceRequest(Auto: true, ComputeDevice.Cuda(0));
        }

        return ComputeDevice.TryParse(value, out var device)
            ? new DeviceRequest(Auto: false, device)
            : throw new ExecutionProviderException($"--device must be auto, cpu, cuda or cuda:N, not '{text}'");
    }
}
