// Licensed under the MIT License. See LICENSE in the repository root.
using System.Diagnostics;
using InferenceServer.Bench;

namespace InferenceServer.LoadGenerator;

/// <summary>
/// Sends one level's prompts: at a fixed concurrency (a new request as soon as one finishes), or as Poisson arrivals
/// at a request rate (optionally capped at a concurrency), like <c>vllm bench serve</c>.
/// </summary>
internal sealed class LoadRunner(CompletionClient client, bool ignoreEos)
{
    /// <summary>
    /// Runs <paramref name="prompts"/>; <paramref name="requestRate"/> null sends them all at once, bounded by
    /// <paramref name="concurrency"/> (0: unbounded).
    /// </summary>
    public async Task<LevelResult> RunAsync(PromptSet prompts, int concurrency, double? requestRate, int seed, CancellationToken cancellationToken)
    {
        var count = prompts.Prompts.Count;
        var limit = concurrency > 0 ? concurrency : count;
        using var slots = new SemaphoreSlim(limit, limit);
        var arrivals = new Random(seed);
        var tasks = new List<Task<CompletionClient.Outcome>>(count);
        var start = Stopwatch.GetTimestamp();
        var next = 0.0;
        for (var i = 0; i < count; i++)
        {
            if (requestRate is { } rate && i > 0)
            {
                // Exponential gaps give Poisson arrivals; wait for the arrival time, not for the previous request.
                next += -Math.Log(1 - arrivals.NextDouble()) / rate;
                var wait = TimeSpan.FromSeconds(next) - Stopwatch.GetElapsedTime(start);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, cancellationToken);
                }
            }

            await slots.WaitAsync(cancellationToken);
            tasks.Add(SendAsync(prompts.Prompts[i], prompts.OutputLengths[i], slots, cancellationToken));
        }

        var outcomes = await Task.WhenAll(tasks);
        return Summarize(outcomes, concurrency, requestRate, Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    /// <summary>A level's result from its requests' outcomes; the first three distinct errors go to standard error.</summary>
    public static LevelResult Summarize(IReadOnlyList<CompletionClient.Outcome> outcomes, int concurrency, double? requestRate, double durationS)
    {
        var errors = outcomes.Where(static o => o.Error is not null).Select(static o => o.Error!).ToList();
        foreach (var error in errors.Distinct().Take(3))
        {
            Console.Error.WriteLine($"  failed request: {error}");
        }

        return LevelResult.From(concurrency, requestRate, [.. outcomes.Where(static o => o.Sample is not null).Select(static o => o.Sample!)], errors.Count, durationS);
    }

    private async Task<CompletionClient.Outcome> SendAsync(int[] prompt, int maxTokens, SemaphoreSlim slots, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Yield();
            return await client.CompleteAsync(prompt, maxTokens, ignoreEos, cancellationToken);
        }
        finally
        {
            slots.Release();
        }
    }
}
