using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>
/// Every sampling parameter inside the real scheduler on a real fixture model, checked against an independent oracle:
/// <see cref="ReferenceModel"/> recomputes each step from scratch and the test applies the math itself.
/// </summary>
public sealed class SamplingParametersSchedulerTests
{
    private const string Fixture = "llama-gqa";

    private static int[] Prompt(int length, int multiplier) => Enumerable.Range(0, length).Select(i => (i * multiplier % 1000) + 3).ToArray();

    [Fact]
    public async Task LogitBiasPlus100_ForcesTheToken_GreedyAndSampled()
    {
        await using var harness = SchedulerHarness.Start(Fixture);
        var bias = new Dictionary<int, float> { [77] = 100 };
        var greedy = harness.Submit(SchedulerHarness.Request(Prompt(12, 7), 6, SamplingParameters.Greedy with { LogitBias = bias }));
        var sampled = harness.Submit(SchedulerHarness.Request(Prompt(12, 7), 6, new SamplingParameters { Temperature = 1.5, Seed = 4, LogitBias = bias }));
        Assert.Equal(Enumerable.Repeat(77, 6), (await SchedulerHarness.CollectAsync(greedy)).Tokens);
        Assert.Equal(Enumerable.Repeat(77, 6), (await SchedulerHarness.CollectAsync(sampled)).Tokens);
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task LogitBiasMinus100_OnTheGreedyToken_PicksTheRunnerUp()
    {
        using var reference = new ReferenceModel(Fixture);
        await using var harness = SchedulerHarness.Start(Fixture);
        var prompt = SchedulerHarness.Cases(Fixture)[0].Prompt;
        var logits = reference.LastLogits(prompt);
        var best = LogitMath.ArgMax(logits);
        logits[best] -= 100;
        var runnerUp = LogitMath.ArgMax(logits);

        var plain = (await SchedulerHarness.CollectAsync(harness.Submit(SchedulerHarness.Request(prompt, 1)))).Tokens;
        var sampling = SamplingParameters.Greedy with { LogitBias = new Dictionary<int, float> { [best] = -100 } };
        var biased = (await SchedulerHarness.CollectAsync(harness.Submit(SchedulerHarness.Request(prompt, 1, sampling)))).Tokens;
        Assert.Equal([best], plain);
        Assert.Equal([runnerUp], biased);
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Theory]
    [InlineData(1.5, 0.0, 1.0)]
    [InlineData(0.0, 0.7, 1.0)]
    [InlineData(0.0, 0.0, 1.8)]
    [InlineData(0.0, 0.0, 0.6)]
    [InlineData(0.5, 0.4, 1.3)]
    [InlineData(-1.0, 0.0, 1.0)]
    public async Task Penalties_MatchAStraightforwardImplementation(double presence, double frequency, double repetition)
    {
        using var reference = new ReferenceModel(Fixture);
        await using var harness = SchedulerHarness.Start(Fixture, new SchedulerOptions { MaxNumBatchedTokens = 7 });
        var prompt = Prompt(20, 7);
        const int Steps = 24;
        var sampling = SamplingParameters.Greedy with { PresencePenalty = presence, FrequencyPenalty = frequency, RepetitionPenalty = repetition };

        var expected = new List<int>();
        var plain = new List<int>();
        for (var step = 0; step < Steps; step++)
        {
            var logits = reference.LastLogits([.. prompt, .. expected]);
            ApplyPenalties(logits, prompt, expected, (float)presence, (float)frequency, (float)repetition);
            expected.Add(LogitMath.ArgMax(logits));
            plain.Add(LogitMath.ArgMax(reference.LastLogits([.. prompt, .. plain])));
        }

        // A second request without penalties in the same batch must not be affected by the first's counts.
        var penalized = harness.Submit(SchedulerHarness.Request(prompt, Steps, sampling));
        var unpenalized = harness.Submit(SchedulerHarness.Request(prompt, Steps));
        Assert.Equal(expected, (await SchedulerHarness.CollectAsync(penalized)).Tokens);
        Assert.Equal(plain, (await SchedulerHarness.CollectAsync(unpenalized)).Tokens);
        Assert.NotEqual(plain, expected);
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task MinP_KeepsOnlyTokensAboveTheFractionOfTheBest()
    {
        using var reference = new ReferenceModel(Fixture);
        await using var harness = SchedulerHarness.Start(Fixture);
        var prompt = SchedulerHarness.Cases(Fixture)[2].Prompt;
        const double Temperature = 1.3;
        const double MinP = 0.2;

        // Probabilities after temperature; min_p keeps p >= MinP * max p.
        var scaled = reference.LastLogits(prompt).Select(l => (float)(l / Temperature)).ToArray();
        var probabilities = ReferenceModel.LogSoftmax(scaled).Select(Math.Exp).ToArray();
        var threshold = MinP * probabilities.Max();
        var allowed = Enumerable.Range(0, probabilities.Length).Where(i => probabilities[i] >= threshold).ToHashSet();

        var withMinP = Enumerable.Range(0, 48).Select(seed => harness.Submit(SchedulerHarness.Request(prompt, 1, new SamplingParameters { Temperature = Temperature, MinP = MinP, Seed = seed }))).ToList();
        var without = Enumerable.Range(0, 48).Select(seed => harness.Submit(SchedulerHarness.Request(prompt, 1, new SamplingParameters { Temperature = Temperature, Seed = seed }))).ToList();
        var filtered = new List<int>();
        var unfiltered = new List<int>();
        foreach (var stream in withMinP)
        {
            filtered.AddRange((await SchedulerHarness.CollectAsync(stream)).Tokens);
        }

        foreach (var stream in without)
        {
            unfiltered.AddRange((await SchedulerHarness.CollectAsync(stream)).Tokens);
        }

        Assert.All(filtered, token => Assert.Contains(token, allowed));
        Assert.True(filtered.Distinct().Count() > 1, "min_p should still sample, not collapse to greedy");
        Assert.Contains(unfiltered, token => !allowed.Contains(token));
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task Logprobs_AreTheRawLogSoftmax_WithSortedTopK()
    {
        using var reference = new ReferenceModel(Fixture);
        await using var harness = SchedulerHarness.Start(Fixture);
        var prompt = SchedulerHarness.Cases(Fixture)[1].Prompt;
        var greedyFirst = LogitMath.ArgMax(reference.LastLogits(prompt));

        // The bias moves the pick away from the most likely token; the reported logprobs stay the model's own.
        var biased = harness.Submit(SchedulerHarness.Request(prompt, 8, SamplingParameters.Greedy with { Logprobs = 5, LogitBias = new Dictionary<int, float> { [greedyFirst] = -100 }, FrequencyPenalty = 0.5 }));
        var sampled = harness.Submit(SchedulerHarness.Request(prompt, 8, new SamplingParameters { Temperature = 0.9, Seed = 17, TopK = 40, Logprobs = 0 }));
        var plain = harness.Submit(SchedulerHarness.Request(prompt, 8));
        await AssertLogprobsAsync(reference, prompt, biased, 5);
        await AssertLogprobsAsync(reference, prompt, sampled, 0);
        Assert.All(await SchedulerHarness.CollectUpdatesAsync(plain), u => Assert.Null(u.Logprobs));
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Theory]
    [InlineData(2048)]
    [InlineData(6)]
    public async Task PromptLogprobs_EqualPerPrefixForwards_AndBypassTheCache(int maxBatchedTokens)
    {
        using var reference = new ReferenceModel(Fixture);
        await using var harness = SchedulerHarness.Start(Fixture, new SchedulerOptions { MaxNumBatchedTokens = maxBatchedTokens });
        var prompt = Prompt(40, 11);

        // Warm the prefix cache with the same prompt: the prompt-logprobs request must still compute every position.
        var warm = (await SchedulerHarness.CollectAsync(harness.Submit(SchedulerHarness.Request(prompt, 3)))).Tokens;
        var decoding = harness.Submit(SchedulerHarness.Request(Prompt(9, 5), 20));
        var updates = await SchedulerHarness.CollectUpdatesAsync(harness.Submit(SchedulerHarness.Request(prompt, 3, SamplingParameters.Greedy with { PromptLogprobs = 3 })));
        await SchedulerHarness.CollectAsync(decoding);

        Assert.Equal(warm, updates.Where(u => u.TokenId >= 0).Select(u => u.TokenId));
        Assert.Equal(0, updates[^1].CachedPromptTokens);
        Assert.All(updates.Skip(1), u => Assert.Null(u.PromptLogprobs));
        AssertPromptLogprobs(reference, prompt, updates[0].PromptLogprobs, 3);
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task LogprobsAndPenalties_SurvivePreemption()
    {
        // llama-gqa: 768 bytes/token; 34 blocks of 16 hold one 300-token sequence and most of another (see SmallKvBudget).
        var options = new SchedulerOptions { KvCacheMemory = 768 * 16 * 34, BlockSize = 16, MaxNumBatchedTokens = 64 };
        await using var harness = SchedulerHarness.Start(Fixture, options);
        var long1 = Prompt(200, 7);
        var long2 = Prompt(200, 13);
        var sampling = SamplingParameters.Greedy with { PromptLogprobs = 1, Logprobs = 1, FrequencyPenalty = 0.3, RepetitionPenalty = 1.1 };
        var alone = await SchedulerHarness.CollectUpdatesAsync(harness.Submit(SchedulerHarness.Request(long2, 100, sampling)));

        var first = harness.Submit(SchedulerHarness.Request(long1, 100));
        var second = harness.Submit(SchedulerHarness.Request(long2, 100, sampling));
        await SchedulerHarness.CollectAsync(first);
        var together = await SchedulerHarness.CollectUpdatesAsync(second);
        Assert.True(harness.Scheduler.Preemptions > 0, "the KV budget should have forced a preemption");
        Assert.Equal(alone.Select(u => u.TokenId), together.Select(u => u.TokenId));
        for (var u = 0; u < together.Count; u++)
        {
            AssertClose(alone[u].Logprobs, together[u].Logprobs);
        }

        Assert.Equal(200, together[0].PromptLogprobs!.Count);
        for (var p = 0; p < 200; p++)
        {
            AssertClose(alone[0].PromptLogprobs![p], together[0].PromptLogprobs![p]);
        }

        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task Batched_EqualsSequential_WithEveryParameter()
    {
        await using var harness = SchedulerHarness.Start(Fixture, new SchedulerOptions { MaxNumBatchedTokens = 24 });
        var cases = SchedulerHarness.Cases(Fixture);
        Func<GenerationRequest>[] requests =
        [
            () => SchedulerHarness.Request(cases[0].Prompt, 10, SamplingParameters.Greedy with { LogitBias = new Dictionary<int, float> { [5] = 4, [cases[0].Greedy[0]] = -3 }, Logprobs = 2 }),
            () => SchedulerHarness.Request(Prompt(30, 13), 10, SamplingParameters.Greedy with { PresencePenalty = 1, FrequencyPenalty = 0.5, RepetitionPenalty = 1.2, PromptLogprobs = 2 }),
            () => SchedulerHarness.Request(cases[1].Prompt, 10, new SamplingParameters { Temperature = 0.8, Seed = 11, MinP = 0.05, TopK = 50, TopP = 0.9, FrequencyPenalty = 0.3, Logprobs = 1 }),
            () => SchedulerHarness.Request(cases[2].Prompt, 10, new SamplingParameters { Temperature = 1.2, Seed = 3, RepetitionPenalty = 1.5, PromptLogprobs = 0, Logprobs = 0 }),
            () => SchedulerHarness.Request(cases[3].Prompt, 6, new SamplingParameters { Temperature = 1, Seed = 8 }, new FixedSequenceConstraint(9, 8, 7, 6, 5, 4)),
            () => SchedulerHarness.Request(Prompt(50, 17), 10),
        ];

        var alone = new List<List<GenerationUpdate>>();
        foreach (var make in requests)
        {
            alone.Add(await SchedulerHarness.CollectUpdatesAsync(harness.Submit(make())));
        }

        var streams = requests.Select(make => harness.Submit(make())).ToList();
        for (var i = 0; i < requests.Length; i++)
        {
            var together = await SchedulerHarness.CollectUpdatesAsync(streams[i]);
            Assert.Equal(alone[i].Select(u => u.TokenId), together.Select(u => u.TokenId));
            Assert.Equal(alone[i][^1].Finish, together[^1].Finish);
            for (var u = 0; u < together.Count; u++)
            {
                AssertClose(alone[i][u].Logprobs, together[u].Logprobs);
                Assert.Equal(alone[i][u].PromptLogprobs is null, together[u].PromptLogprobs is null);
                for (var p = 0; together[u].PromptLogprobs is { } list && p < list.Count; p++)
                {
                    AssertClose(alone[i][u].PromptLogprobs![p], list[p]);
                }
            }
        }

        Assert.Equal([9, 8, 7, 6, 5, 4], alone[4].Where(u => u.TokenId >= 0).Select(u => u.TokenId));
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task Constraint_IsFollowed_AndEveryTokenAccepted()
    {
        await using var harness = SchedulerHarness.Start(Fixture);
        var greedyConstraint = new FixedSequenceConstraint(10, 20, 30, 40, 50);
        var sampledConstraint = new FixedSequenceConstraint(11, 11, 500, 2, 7);
        var greedy = harness.Submit(SchedulerHarness.Request(Prompt(10, 3), 5, constraint: greedyConstraint));
        var sampled = harness.Submit(SchedulerHarness.Request(Prompt(10, 3), 5, new SamplingParameters { Temperature = 1.5, Seed = 1 }, sampledConstraint));
        var (greedyTokens, greedyFinal) = await SchedulerHarness.CollectAsync(greedy);
        var (sampledTokens, _) = await SchedulerHarness.CollectAsync(sampled);
        Assert.Equal([10, 20, 30, 40, 50], greedyTokens);
        Assert.Equal(FinishReason.Length, greedyFinal.Finish);
        Assert.Equal([11, 11, 500, 2, 7], sampledTokens);
        Assert.Equal([10, 20, 30, 40, 50], greedyConstraint.Accepted);
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task Constraint_MaskingEveryToken_EndsWithAnError_AndFreesBlocks()
    {
        await using var harness = SchedulerHarness.Start(Fixture);
        var other = harness.Submit(SchedulerHarness.Request(Prompt(30, 7), 12));
        var (tokens, final) = await SchedulerHarness.CollectAsync(harness.Submit(SchedulerHarness.Request(Prompt(40, 3), 10, constraint: new FixedSequenceConstraint(10, 20, 30))));
        Assert.Equal([10, 20, 30], tokens);
        Assert.Equal(FinishReason.Error, final.Finish);
        Assert.Contains("every token is masked", final.Error);
        Assert.Equal(12, (await SchedulerHarness.CollectAsync(other)).Tokens.Length);
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
        Assert.Equal(0, harness.Scheduler.ActiveRequests);
    }

    [Fact]
    public async Task Constraint_AllowingOnlyEosBeforeMinTokens_EndsWithAnError()
    {
        await using var harness = SchedulerHarness.Start(Fixture);
        var request = SchedulerHarness.Request(Prompt(10, 3), 10, constraint: new FixedSequenceConstraint(2)) with
        {
            Stop = new StopConditions { MaxTokens = 10, MinTokens = 2 },
        };
        var (tokens, final) = await SchedulerHarness.CollectAsync(harness.Submit(request));
        Assert.Empty(tokens);
        Assert.Equal(FinishReason.Error, final.Finish);
        Assert.Contains("min_tokens", final.Error);
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task Constraint_ThatThrows_EndsOnlyItsRequest()
    {
        await using var harness = SchedulerHarness.Start(Fixture);
        var other = harness.Submit(SchedulerHarness.Request(Prompt(30, 7), 6));
        var (_, final) = await SchedulerHarness.CollectAsync(harness.Submit(SchedulerHarness.Request(Prompt(10, 3), 10, constraint: new FixedSequenceConstraint(1) { ThrowOnMask = true })));
        Assert.Equal(FinishReason.Error, final.Finish);
        Assert.Contains("matcher state corrupted", final.Error);
        Assert.Equal(6, (await SchedulerHarness.CollectAsync(other)).Tokens.Length);
        Assert.True(harness.Scheduler.IsRunning);
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task InvalidParameters_AreRefusedAtSubmission()
    {
        await using var harness = SchedulerHarness.Start(Fixture);
        var outOfVocab = SchedulerHarness.Request([5, 6], 2, SamplingParameters.Greedy with { LogitBias = new Dictionary<int, float> { [1024] = 1 } });
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => harness.Scheduler.TrySubmit(outOfVocab, out _, default));
        Assert.Contains("vocabulary", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => harness.Scheduler.TrySubmit(SchedulerHarness.Request([5], 2, SamplingParameters.Greedy with { RepetitionPenalty = 0 }), out _, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => harness.Scheduler.TrySubmit(SchedulerHarness.Request([5], 2, SamplingParameters.Greedy with { MinP = 1.5 }), out _, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => harness.Scheduler.TrySubmit(SchedulerHarness.Request([5], 2, SamplingParameters.Greedy with { Logprobs = -1 }), out _, default));
        Assert.Equal(0, harness.Scheduler.ActiveRequests);
    }

    private static void ApplyPenalties(float[] logits, int[] prompt, List<int> output, float presence, float frequency, float repetition)
    {
        var seen = prompt.Concat(output).ToHashSet();
        var counts = output.GroupBy(t => t).ToDictionary(g => g.Key, g => g.Count());
        for (var i = 0; i < logits.Length; i++)
        {
            if (seen.Contains(i))
            {
                logits[i] = logits[i] > 0 ? logits[i] / repetition : logits[i] * repetition;
            }

            if (counts.TryGetValue(i, out var count))
            {
                logits[i] -= frequency * count;
                logits[i] -= presence;
            }
        }
    }

    private static async Task AssertLogprobsAsync(ReferenceModel reference, int[] prompt, System.Threading.Channels.ChannelReader<GenerationUpdate> stream, int k)
    {
        var updates = await SchedulerHarness.CollectUpdatesAsync(stream);
        var tokens = new List<int>(prompt);
        Assert.Null(updates[^1].Logprobs);
        foreach (var update in updates.Where(u => u.TokenId >= 0))
        {
            var expected = ReferenceModel.LogSoftmax(reference.LastLogits(tokens));
            AssertReport(expected, update.TokenId, update.Logprobs, k);
            tokens.Add(update.TokenId);
        }
    }

    private static void AssertPromptLogprobs(ReferenceModel reference, int[] prompt, IReadOnlyList<TokenLogprobs?>? logprobs, int k)
    {
        Assert.NotNull(logprobs);
        Assert.Equal(prompt.Length, logprobs.Count);
        Assert.Null(logprobs[0]);
        for (var i = 1; i < prompt.Length; i++)
        {
            AssertReport(ReferenceModel.LogSoftmax(reference.LastLogits(prompt[..i])), prompt[i], logprobs[i], k);
        }
    }

    private static void AssertReport(double[] expected, int token, TokenLogprobs? report, int k)
    {
        Assert.NotNull(report);
        Assert.Equal(token, report.TokenId);
        Assert.True(Math.Abs(expected[token] - report.Logprob) < 1e-4, $"token {token}: {report.Logprob} vs {expected[token]}");
        Assert.Equal(expected.Count(v => v >= expected[token]), report.Rank);
        var top = Enumerable.Range(0, expected.Length).OrderByDescending(i => expected[i]).ThenBy(i => i).Take(k).ToArray();
        Assert.Equal(top, report.Top.Select(t => t.TokenId));
        for (var j = 0; j < k; j++)
        {
            Assert.True(Math.Abs(expected[top[j]] - report.Top[j].Logprob) < 1e-4, $"top {j}: {report.Top[j].Logprob} vs {expected[top[j]]}");
            Assert.True(j == 0 || report.Top[j - 1].Logprob >= report.Top[j].Logprob, "top-k must be sorted descending");
        }
    }

    private static void AssertClose(TokenLogprobs? expected, TokenLogprobs? actual)
    {
        Assert.Equal(expected is null, actual is null);
        if (expected is null || actual is null)
        {
            return;
        }

        Assert.Equal(expected.TokenId, actual.TokenId);
        Assert.True(Math.Abs(expected.Logprob - actual.Logprob) < 1e-4);
        Assert.Equal(expected.Top.Select(t => t.TokenId), actual.Top.Select(t => t.TokenId));
        for (var j = 0; j < expected.Top.Count; j++)
        {
            Assert.True(Math.Abs(expected.Top[j].Logprob - actual.Top[j].Logprob) < 1e-4);
        }
    }
}
