// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Builder.Onnx.Proto;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// ONNX Runtime's CPU fallback for a graph on its CUDA provider (<c>fallback_cpu_capability.cc</c>,
/// <c>GetCpuPreferredNodes</c>), replayed on a built graph: starting from the host outputs of CUDA kernels (<c>Shape</c>),
/// a node goes to the host when each of its inputs is a small initializer, a graph input, or a host tensor that its CUDA
/// kernel does not read on the host itself; float16/bfloat16 inputs keep it on the device; an op without a CUDA kernel
/// for its int32 data goes to the host whatever its inputs. <see cref="Copies"/> lists the
/// host/device crossings partitioning would then insert as Memcpy nodes, which make ONNX Runtime refuse CUDA graph
/// capture. Only the CUDA kernels' host-read inputs that the builder's graphs use are listed.
/// </summary>
internal static class CudaPlacement
{
    /// <summary>Inputs that ONNX Runtime's CUDA kernels read from host memory, by op type.</summary>
    private static readonly Dictionary<string, int[]> HostInputs = new(StringComparer.Ordinal)
    {
        ["Range"] = [0, 1, 2],
        ["Reshape"] = [1],
        ["Expand"] = [1],
        ["Slice"] = [1, 2, 3, 4],
        ["Squeeze"] = [1],
        ["Unsqueeze"] = [1],
        ["ConstantOfShape"] = [0],
        ["TopK"] = [1],
        ["Split"] = [1],
        ["Tile"] = [1],
        ["ReduceSum"] = [1],
        ["ReduceMax"] = [1],
        ["ReduceMin"] = [1],
        ["ReduceMean"] = [1],
        ["ReduceL2"] = [1],
        ["Pad"] = [1, 2, 3],
        ["PagedAttention"] = [13],
    };

    /// <summary>
    /// Ops whose CUDA kernel has no int32 data type, so ONNX Runtime runs them on the CPU provider when their data (input 0)
    /// is an int32 graph input: GatherND (CUDA: float, fp16, double, int64, bf16, bool).
    /// </summary>
    private static readonly HashSet<string> NoInt32Kernel = new(StringComparer.Ordinal) { "GatherND" };

    /// <summary>Each crossing as "tensor -> consuming op type" (host value into a device input, or device value into a host node).</summary>
    public static List<string> Copies(GraphProto graph)
    {
        var small = graph.Initializer.Where(t => t.Dims.Aggregate(1L, (a, d) => a * d) <= 100).Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var inputs = graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var half = graph.Initializer.Where(t => t.DataType is (int)TensorProto.Types.DataType.Float16 or (int)TensorProto.Types.DataType.Bfloat16).Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var int32Inputs = graph.Input.Where(i => i.Type?.TensorType?.ElemType == (int)TensorProto.Types.DataType.Int32).Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var hostTensors = new HashSet<string>(StringComparer.Ordinal);
        var hostNodes = new HashSet<NodeProto>();
        foreach (var node in graph.Node)
        {
            // Graph nodes are in topological order (the builder writes them so); a Shape's output is on the host.
            if (node.OpType == "Shape")
            {
                hostTensors.Add(node.Output[0]);
                continue;
            }

            if (NoInt32Kernel.Contains(node.OpType) && int32Inputs.Contains(node.Input[0]))
            {
                hostNodes.Add(node);
                foreach (var output in node.Output)
                {
                    hostTensors.Add(output);
                }

                continue;
            }

            var candidate = node.Input.Any(hostTensors.Contains);
            var host = candidate;
            for (var i = 0; candidate && i < node.Input.Count; i++)
            {
                var input = node.Input[i];
                if (input.Length == 0 || small.Contains(input) || inputs.Contains(input))
                {
                    continue;
                }

                if (half.Contains(input) || !hostTensors.Contains(input) || ReadsOnHost(node, i))
                {
                    host = false;
                    break;
                }
            }

            if (host)
            {
                hostNodes.Add(node);
                foreach (var output in node.Output)
                {
                    hostTensors.Add(output);
                }
            }
        }

        var copies = new List<string>();
        foreach (var node in graph.Node.Where(n => n.OpType != "Shape"))
        {
            for (var i = 0; i < node.Input.Count; i++)
            {
                var input = node.Input[i];
                if (input.Length == 0 || graph.Initializer.Any(t => t.Name == input))
                {
                    continue;
                }

                if (inputs.Contains(input))
                {
                    // A graph input lives where its readers want it; readers on both sides need a copy for one of them.
                    if (hostNodes.Contains(node) && graph.Node.Any(n => !hostNodes.Contains(n) && n.Input.Contains(input) && !ReadsOnHost(n, n.Input.IndexOf(input))))
                    {
                        copies.Add($"{input} -> {node.OpType}");
                    }

                    continue;
                }

                var onHost = hostTensors.Contains(input);
                var wantsHost = hostNodes.Contains(node) || ReadsOnHost(node, i);
                if (onHost != wantsHost)
                {
                    copies.Add($"{input} -> {node.OpType}");
                }
            }
        }

        return copies;
    }

    private static bool ReadsOnHost(NodeProto node, int input) => HostInputs.TryGetValue(node.OpType, out var indices) && indices.Contains(input);
}
