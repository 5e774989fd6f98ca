// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;
using InferenceServer.Builder;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Builder.Tests.Graph;

/// <summary>
/// An MoH split segment's routed queries (ADR 0005): <c>q_routed</c> and <c>head_index</c> hold exactly the rows of
/// <c>q</c> whose heads <c>head_mask</c> turns on, so a memory device given only them (and the mask rebuilt from the
/// index, as the CUDA split runner's <c>RoutedHeadQueries.Expand</c> does) attends as with every head's query. Run by
/// ONNX Runtime's CPU provider on a prompt of the fixture.
/// </summary>
public sealed class RoutedQueriesSplitTests
{
    [Theory]
    [InlineData("fp16", "cuda")]
    [InlineData("fp32", "cpu")]
    public void MohSegment_RoutedQueries_AreTheMaskedHeadsRowsOfQ(string dtype, string device)
    {
        var folder = BuiltModels.Get("llama-moh", dtype, device, split: true);
        var prompt = BuiltModels.References("llama-moh").MaxBy(c => c.Prompt.Length).Prompt;
        var tokens = prompt.Length;
        using var options = new SessionOptions();
        using var runOptions = new RunOptions();
        using var session = new InferenceSession(Path.Combine(folder, ModelBuilder.SegmentFileName(0)), options);
        using var ids = OrtValue.CreateTensorValueFromMemory(prompt.Select(static t => (long)t).ToArray(), [tokens]);
        using var positions = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, tokens).Select(static t => (long)t).ToArray(), [tokens]);
        string[] names = ["q", "head_mask", "q_routed", "head_index"];
        using var outputs = session.Run(runOptions, ["input_ids", "position_ids"], [ids, positions], names);

        const int Heads = 4, Active = 3, Width = 16;
        var mask = outputs[1].GetTensorDataAsSpan<float>().ToArray();
        var index = outputs[3].GetTensorDataAsSpan<long>().ToArray();
        Assert.Equal(tokens * Active, index.Length);
        var q = dtype == "fp32" ? outputs[0].GetTensorDataAsSpan<float>().ToArray() : Widen(outputs[0]);
        var routed = dtype == "fp32" ? outputs[2].GetTensorDataAsSpan<float>().ToArray() : Widen(outputs[2]);
        float[] expanded = new float[tokens * Heads * Width], rebuilt = new float[tokens * Heads];
        for (var t = 0; t < tokens; t++)
        {
            for (var a = 0; a < Active; a++)
            {
                var head = (int)index[(t * Active) + a];
                routed.AsSpan(((t * Active) + a) * Width, Width).CopyTo(expanded.AsSpan(((t * Heads) + head) * Width));
                rebuilt[(t * Heads) + head] = 1f;
            }
        }

        // The two shared heads first, then one routed head: every token uses three distinct heads, as the mask says.
        for (var t = 0; t < tokens; t++)
        {
            Assert.Equal([0L, 1L], index.AsSpan(t * Active, 2).ToArray());
            Assert.InRange(index[(t * Active) + 2], 2, Heads - 1);
        }

        Assert.Equal(mask, rebuilt);
        for (var i = 0; i < tokens * Heads; i++)
        {
            if (mask[i] == 1f)
            {
                Assert.Equal(q.AsSpan(i * Width, Width).ToArray(), expanded.AsSpan(i * Width, Width).ToArray());
            }
        }
    }

    private static float[] Widen(OrtValue value) =>
        [.. MemoryMarshal.Cast<Float16, Half>(value.GetTensorDataAsSpan<Float16>()).ToArray().Select(static h => (float)h)];
}
