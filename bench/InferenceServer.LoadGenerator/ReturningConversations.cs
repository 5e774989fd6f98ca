// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Bench;

namespace InferenceServer.LoadGenerator;

/// <summary>
/// The returning-conversation workload (issue 17, the host KV tier): <c>conversations</c> first turns (a random prompt
/// of <c>inputLength</c> ids, <c>outputLength</c> greedy tokens), all of them before any returns, then each conversation
/// returns in the same order with its whole history (first prompt, the answer the server gave, <c>followupLength</c> new
/// ids) and asks for <c>returningOutputLength</c> tokens. When the first turns' KV exceeds the device's KV cache the
/// earliest conversations' blocks are evicted by the later ones, so a returning turn either recomputes its history or
/// copies it back from the host tier; the returning turns' TTFT is the measure.
/// </summary>
internal static class ReturningConversations
{
    /// <summary>The two phases' results; <see cref="HistoryTokens"/> is the mean history a returning turn brings.</summary>
    internal sealed record Result(LevelResult First, LevelResult Returning, double HistoryTokens);

    public static async Task<Result> RunAsync(
        CompletionClient client, int conversations, int inputLength, int outputLength, int followupLength, int returningOutputLength,
        int concurrency, int vocab, int seed, CancellationToken cancellationToken)
    {
        var first = PromptSet.Create(seed, -2, conversations, inputLength, outputLength, 0, vocab);
        var followups = PromptSet.Create(seed + 1, -3, conversations, followupLength, returningOutputLength, 0, vocab);
        var (firstResult, answers) = await RunPhaseAsync(client, first.Prompts, outputLength, concurrency, cancellationToken);
        var returning = new int[conversations][];
        for (var i = 0; i < conversations; i++)
        {
            // A first turn that failed returns with its prompt and follow-up only (counted in the first phase's failures).
            returning[i] = [.. first.Prompts[i], .. answers[i], .. followups.Prompts[i]];
        }

        var (returningResult, _) = await RunPhaseAsync(client, returning, returningOutputLength, concurrency, cancellationToken);
        return new Result(firstResult, returningResult, returning.Average(static p => (double)p.Length));
    }

    private static async Task<(LevelResult Result, List<int>[] Answers)> RunPhaseAsync(
        CompletionClient client, IReadOnlyList<int[]> prompts, int maxTokens, int concurrency, CancellationToken cancellationToken)
    {
        var outcomes = new CompletionClient.Outcome[prompts.Count];
        var next = -1;
        var start = Stopwatch.GetTimestamp();

        // Each worker takes the next conversation in order, so the returns come back in the order the first turns left.
        async Task WorkerAsync()
        {
            await Task.Yield();
            int i;
            while ((i = Interlocked.Increment(ref next)) < prompts.Count)
            {
                outcomes[i] = await client.CompleteAsync(prompts[i], maxTokens, ignoreEos: true, cancellationToken);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Math.Max(1, concurrency)).Select(_ => WorkerAsync()));
        var result = LoadRunner.Summarize(outcomes, concurrency, null, Stopwatch.GetElapsedTime(start).TotalSeconds);
        return (result, [.. outcomes.Select(static o => o.TokenIds)]);
    }
}
