// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary><see cref="ForwardBatch.WriteLogitIndices"/>: the packed token index of every logit row, in row order.</summary>
public sealed class ForwardBatchTests
{
    [Fact]
    public void WriteLogitIndices_LastAllAndNone_InRowOrder()
    {
        var batch = new ForwardBatch();
        batch.AddRow([1, 2, 3], 0, [0], RowLogits.Last);
        batch.AddRow([4, 5], 0, [1], RowLogits.None);
        batch.AddRow([6, 7, 8], 4, [2, 3], RowLogits.All);
        batch.AddRow([9], 7, [4, 5], RowLogits.Last);
        var indices = new long[batch.LogitRowCount];
        batch.WriteLogitIndices(indices);
        Assert.Equal([2L, 5, 6, 7, 8], indices);
    }
}
