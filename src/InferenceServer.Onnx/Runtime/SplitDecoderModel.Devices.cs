// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;
using InferenceServer.Onnx.Packaging;

namespace InferenceServer.Onnx.Runtime;

/// <summary>Where a split model's segments and attention may run (ADR 0005), checked before anything is loaded.</summary>
public sealed partial class SplitDecoderModel
{
    /// <summary>
    /// The CUDA device of the dense segments, or -1 for the CPU: fp32 segments run on the CPU (<c>--device cpu|auto</c>),
    /// fp16/bf16 segments on <c>--device cuda[:N]</c> (<c>auto</c> means cuda:0 for them, or with a <c>cuda:N</c> attention
    /// device). A <c>cuda:N</c> attention device must exist; there is at most one; when N is not the compute GPU, q, k, v
    /// and the outputs cross by peer copies. Alone it attends with PagedAttention (the local split);
    /// beside <c>cpu</c> devices with the log-sum-exp graph, so that sequences span it and the host (ADR 0005).
    /// </summary>
    /// <exception cref="ExecutionProviderException">A device that does not exist, or a combination this version does not run.</exception>
    /// <exception cref="ModelPackageException">The folder's segments are in a dtype the chosen device does not run.</exception>
    private static int ChooseComputeDevice(OnnxSessionOptions options, DeviceRequest request, IReadOnlyList<ComputeDevice> attentionDevices, string dtype, ModelPackage package)
    {
        // The messages name the devices as they were given (options.AttentionDevices); the checks read the parsed ones.
        var devices = options.AttentionDevices;
        var cudaAttention = -1;
        var cudaDevices = 0;
        foreach (var device in attentionDevices)
        {
            if (device.IsCuda)
            {
                cudaAttention = device.Ordinal;
                cudaDevices++;
            }
        }

        var half = dtype != "fp32";
        var onCuda = request.Cuda && (!request.Auto || half || cudaAttention >= 0);
        var count = onCuda || cudaAttention >= 0 ? CudaRuntime.DeviceCount() : 0;
        if (cudaAttention >= 0)
        {
            var list = string.Join(",", devices);
            if (cudaDevices > 1)
            {
                throw new ExecutionProviderException(
                    $"--attention-device {list}: at most one cuda:N attention device (one GPU pool); "
                    + "add cpu devices beside it, or use one cuda:N");
            }

            if (cudaAttention >= count)
            {
                throw new ExecutionProviderException($"--attention-device cuda:{cudaAttention.ToString(CultureInfo.InvariantCulture)}: no such CUDA device; {Existing(count)}");
            }

            if (!onCuda)
            {
                throw new ExecutionProviderException($"--attention-device {list} runs attention beside the dense segments on the GPU: serve with --device cuda:{cudaAttention.ToString(CultureInfo.InvariantCulture)}");
            }
        }

        if (onCuda && request.CudaDevice >= count)
        {
            throw new ExecutionProviderException($"--device {options.Device}: no such CUDA device for the split segments; {Existing(count)}");
        }

        if (onCuda && !half)
        {
            throw new ModelPackageException(package.GraphPath,
                "this folder's split segments are fp32, and the CUDA split runs fp16/bf16 segments (PagedAttention has no fp32 CUDA kernel): "
                + "rebuild with 'InferenceServer build --dtype fp16 --device cuda --split', or serve the checkpoint folder with --device cuda (it builds fp16)");
        }

        if (!onCuda && half)
        {
            throw new ModelPackageException(package.GraphPath,
                $"this folder's split segments are {dtype}, which run on CUDA: serve with --device cuda, or rebuild with --dtype fp32 --split for the CPU");
        }

        return onCuda ? request.CudaDevice : -1;
    }

    private static string Existing(int count) => count switch
    {
        0 => "this machine has no usable CUDA device",
        1 => "this machine has one: cuda:0",
        _ => $"this machine has {count.ToString(CultureInfo.InvariantCulture)}: cuda:0 to cuda:{(count - 1).ToString(CultureInfo.InvariantCulture)}",
    };
}
