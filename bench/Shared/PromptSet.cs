// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Bench;

/// <summary>
/// Random token-id prompts, reproducible from a seed so that the load generator and the onnxruntime-genai baseline
/// send exactly the same prompts. Ids are drawn from <c>[10, vocab)</c>, clear of the special tokens.
/// </summary>
internal sealed class PromptSet
{
    /// <summary>The lowest token id drawn.</summary>
    public const int FirstId = 10;

    private PromptSet(int[][] prompts, int[] outputLengths)
    {
        Prompts = prompts;
        OutputLengths = outputLengths;
    }

    /// <summary>The prompts, as token ids.</summary>
    public IReadOnlyList<int[]> Prompts { get; }

    /// <summary>The number of tokens to generate for each prompt.</summary>
    public IReadOnlyList<int> OutputLengths { get; }

    /// <summary>
    /// Creates <paramref name="count"/> prompts for one benchmark level. Lengths are fixed, or uniform in
    /// <c>[len * (1 - ratio), len * (1 + ratio)]</c> (at least 1) when <paramref name="rangeRatio"/> is above 0.
    /// <paramref name="level"/> changes the seed so that levels never share a prefix (and a prefix cache cannot help).
    /// </summary>
    public static PromptSet Create(int seed, int level, int count, int inputLength, int outputLength, double rangeRatio, int vocab)
    {
        var random = new Random(unchecked((seed * 1_000_003) + level));
        var prompts = new int[count][];
        var outputs = new int[count];
        for (var i = 0; i < count; i++)
        {
            var length = Draw(random, inputLength, rangeRatio);
            outputs[i] = Draw(random, outputLength, rangeRatio);
            prompts[i] = new int[length];
            for (var j = 0; j < length; j++)
            {
                prompts[i][j] = random.Next(FirstId, vocab);
            }
        }

        return new PromptSet(prompts, outputs);
    }

    private static int Draw(Random random, int length, double ratio)
    {
        if (ratio <= 0)
        {
            return length;
        }

        var low = Math.Max(1, (int)Math.Floor(length * (1 - ratio)));
        var high = Math.Max(low, (int)Math.Ceiling(length * (1 + ratio)));
        return random.Next(low, high + 1);
    }
}
