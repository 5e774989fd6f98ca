// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Builder.Graph;

/// <summary>
/// One linear layer's <c>[N, K]</c> weight quantized by <see cref="Int4Quantizer"/>: <c>MatMulNBits</c>' packed
/// <paramref name="Packed"/> <c>[N, blocks, BlockSize / 2]</c>, <paramref name="Scales"/> <c>[N * blocks]</c> (fp32 here,
/// written in the graph's activation type), and <paramref name="ZeroPoints"/> <c>[N * ceil(blocks / 2)]</c> or null (symmetric).
/// </summary>
internal sealed record Int4Weight(int N, int K, int BlockSize, byte[] Packed, float[] Scales, byte[]? ZeroPoints);
