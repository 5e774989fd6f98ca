// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// A device that runs graphs or holds KV memory: the host (<c>cpu</c>) or CUDA GPU N (<c>cuda:N</c>). Parsed once where a
/// flag is read; everything after passes this value, never the text. <see cref="ToString"/> is the name logs,
/// <c>/v1/models</c> and <c>GetModelInfo</c> print.
/// </summary>
/// <param name="Kind">CPU or CUDA.</param>
/// <param name="Ordinal">The CUDA device ordinal (0 for the CPU).</param>
public readonly record struct ComputeDevice(ComputeDeviceKind Kind, int Ordinal)
{
    /// <summary>The host.</summary>
    public static ComputeDevice Cpu => default;

    /// <summary>Whether this is a CUDA device.</summary>
    public bool IsCuda => Kind == ComputeDeviceKind.Cuda;

    /// <summary>CUDA device <paramref name="ordinal"/>.</summary>
    public static ComputeDevice Cuda(int ordinal)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ordinal);
        return new ComputeDevice(ComputeDeviceKind.Cuda, ordinal);
    }

    /// <summary>
    /// Reads <c>cpu</c>, <c>cuda</c> (device 0) or <c>cuda:N</c>, case and surrounding space ignored; false for anything
    /// else (<c>auto</c> is a request, not a device: <see cref="DeviceRequest"/>).
    /// </summary>
    public static bool TryParse(string? text, out ComputeDevice device)
    {
        device = default;
        var value = (text ?? string.Empty).Trim();
        if (value.Equals("cpu", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        if (value.Equals("cuda", StringComparison.OrdinalIgnoreCase))
        {
            device = Cuda(0);
            return true;
        }

        if (value.StartsWith("cuda:", StringComparison.OrdinalIgnoreCase)
            && int.TryParse(value.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var ordinal))
        {
            device = Cuda(ordinal);
            return true;
        }

        return false;
    }

    /// <summary>Reads <paramref name="text"/> as <see cref="TryParse"/> does.</summary>
    /// <exception cref="ExecutionProviderException">Not <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</exception>
    public static ComputeDevice Parse(string text) => TryParse(text, out var device)
        ? device
        : throw new ExecutionProviderException($"a device must be cpu, cuda or cuda:N, not '{text}'");

    /// <summary><c>cpu</c> or <c>cuda:N</c>.</summary>
    public override string ToString() => IsCuda ? string.Create(CultureInfo.InvariantCulture, $"cuda:{Ordinal}") : "cpu";
}
