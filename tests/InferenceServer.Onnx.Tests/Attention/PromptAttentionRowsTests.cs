// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Attention;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary>
/// Which rows of a step attend on the compute device (<see cref="PromptAttention.FreshRows"/>) and which token ranges are
/// left for the host (<see cref="PromptAttention.Rest"/>): the CUDA split runner brings back and widens the queries of
/// those ranges only.
/// </summary>
public sealed class PromptAttentionRowsTests
{
    [Fact]
    public void FreshRows_AreFirstChunksAtTheThreshold_AndRestIsEveryOtherToken()
    {
        var batch = new ForwardBatch();
        batch.AddRow(new int[200], 0, [0], RowLogits.Last);    // tokens 0-199: a fresh prompt
        batch.AddRow([5], 40, [1], RowLogits.Last);            // 200: decode
        batch.AddRow(new int[100], 0, [2], RowLogits.Last);    // 201-300: under the threshold, stays on the host
        batch.AddRow(new int[150], 300, [3], RowLogits.Last);  // 301-450: a continued prompt
        batch.AddRow(new int[128], 0, [4], RowLogits.Last);    // 451-578: fresh, exactly the threshold
        var fresh = new List<(int Offset, int Count)>();
        var rest = new List<(int Offset, int Count)>();

        Assert.Equal(2, PromptAttention.FreshRows(batch, 128, fresh));
        Assert.Equal([(0, 200), (451, 128)], fresh);
        PromptAttention.Rest(fresh, 579, rest);
        Assert.Equal([(200, 251)], rest);
    }

    [Fact]
    public void Rest_CoversTheEnds_AndIsEmptyWhenEveryRowIsFresh()
    {
        var rest = new List<(int Offset, int Count)> { (9, 9) };
        PromptAttention.Rest([(3, 4)], 10, rest);
        Assert.Equal([(0, 3), (7, 3)], rest);
        PromptAttention.Rest([(0, 10)], 10, rest);
        Assert.Empty(rest);
        PromptAttention.Rest([], 10, rest);
        Assert.Equal([(0, 10)], rest);
    }
}
