// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Safetensors;

/// <summary>One tensor's header entry: element type, shape and byte range within the file's data section.</summary>
/// <param name="Name">The tensor name, such as <c>model.layers.0.self_attn.q_proj.weight</c>.</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions, outermost first.</param>
/// <param name="Begin">Start offset within the data section (after the header).</param>
/// <param name="End">End offset (exclusive) within the data section.</param>
internal sealed record SafetensorsTensorInfo(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End)
{
    /// <summary>Number of elements (the product of <see cref="Shape"/>; 1 for a scalar).</summary>
    public long ElementCount
    {
        get
        {
            long count = 1;
            foreach (var d in Shape)
            {
                count *= d;
            }

            return count;
        }
    }

    /// <summary>Bytes per element of <see cref="DType"/>.</summary>
    public int ElementSize => DType == SafetensorsDType.F32 ? 4 : 2;
}
