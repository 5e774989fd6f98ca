// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;

namespace InferenceServer.Onnx.Runtime;

/// <summary>What <c>--device</c> asks for: <c>auto</c>, <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
/// <param name="Auto">CUDA device 0 when its provider loads, else the CPU.</param>
/// <param name="Cuda">A CUDA device, insisted on (with <see cref="Auto"/> false) or tried first.</param>
/// <param name="CudaDevice">The CUDA device ordinal (0 for <c>cuda</c> and <c>auto</c>).</param>
public readonly record struct DeviceRequest(bool Auto, bool Cuda, int CudaDevice)
{
    /// <summary>Parses <paramref name="text"/> (case and surrounding space ignored; empty means <c>auto</c>).</summary>
    /// <exception cref="ExecutionProviderException">Not one of the four forms.</exception>
    public static DeviceRequest Parse(string text)
    {
        var value = text.Trim().ToLowerInvariant();
        if (value is "" or "auto")
        {
            return new DeviceRequest(Auto: true, Cuda: true, CudaDevice: 0);
        }

        if (value == "cpu")
        {
            return new DeviceRequest(Auto: false, Cuda: false, CudaDevice: 0);
        }

        if (value == "cuda")
        {
            return new DeviceRequest(Auto: false, Cuda: true, CudaDevice: 0);
        }

        if (value.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(value.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            return new DeviceRequest(Auto: false, Cuda: true, CudaDevice: id);
        }

        throw new ExecutionProviderException($"--device must be auto, cpu, cuda or cuda:N, not '{text}'");
    }
}
