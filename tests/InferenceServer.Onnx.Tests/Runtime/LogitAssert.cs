namespace InferenceServer.Onnx.Tests.Runtime;

/// <summary>The runner tests' comparison of a logit row with its reference.</summary>
internal static class LogitAssert
{
    /// <summary>Every logit of <paramref name="actual"/> within 1e-4 of <paramref name="expected"/>; the message names <paramref name="what"/> and the logit.</summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-4, $"{what}, logit {i}: {actual[i]} vs {expected[i]}");
        }
    }
}
