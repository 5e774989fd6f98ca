using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>Batched results equal the reference (sequential) results token for token, and the block pool is whole afterwards.</summary>
public sealed class ContinuousBatchSchedulerTests
{
    public static TheoryData<string> Fixtures => new() { "llama-gqa", "qwen2", "deepseek-v3-mla" };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public async Task AllCasesAtOnce_MatchReference(string fixture)
    {
        await using var harness = SchedulerHarness.Start(fixture);
        var cases = SchedulerHarness.Cases(fixture);
        var streams = cases.Select(c => harness.Submit(c.Prompt, c.Greedy.Length)).ToList();
        for (var i = 0; i < cases.Count; i++)
        {
            var (tokens, final) = await SchedulerHarness.CollectAsync(streams[i]);
            Assert.Equal(cases[i].Greedy, tokens);
            Assert.Equal(FinishReason.Length, final.Finish);
        }

        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public async Task ArrivalsDuringDecode_MatchReference(string fixture)
    {
        await using var harness = SchedulerHarness.Start(fixture);
        var cases = SchedulerHarness.Cases(fixture);
        var first = harness.Submit(cases[0].Prompt, cases[0].Greedy.Length);
        var firstTokens = new List<int>();
        var rest = new List<System.Threading.Channels.ChannelReader<GenerationUpdate>>();
        await foreach (var update in first.ReadAllAsync())
        {
            if (update.TokenId >= 0)
            {
                firstTokens.Add(update.TokenId);
            }

            // Join one more request after each of the first tokens, while the first is decoding.
            if (rest.Count < cases.Count - 1)
            {
                var next = cases[rest.Count + 1];
                rest.Add(harness.Submit(next.Prompt, next.Greedy.Length));
            }
        }

        Assert.Equal(cases[0].Greedy, firstTokens);
        for (var i = 0; i < rest.Count; i++)
        {
            Assert.Equal(cases[i + 1].Greedy, (await SchedulerHarness.CollectAsync(rest[i])).Tokens);
        }

        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task SmallKvBudget_ForcesPreemption_AndStillMatches()
    {
        // llama-gqa: 3 layers x (2 + 2 heads) x 16 wide x 4 bytes = 768 bytes/token; 512 positions need 32 blocks of 16.
        var options = new SchedulerOptions { KvCacheMemory = 768 * 16 * 34, BlockSize = 16 };
        await using var harness = SchedulerHarness.Start("llama-gqa", options);
        var cases = SchedulerHarness.Cases("llama-gqa");
        var long1 = Enumerable.Range(0, 200).Select(i => (i * 7 % 1000) + 3).ToArray();
        var long2 = Enumerable.Range(0, 200).Select(i => (i * 13 % 1000) + 3).ToArray();

        // Sequential references for the long prompts, one at a time.
        var reference1 = (await SchedulerHarness.CollectAsync(harness.Submit(long1, 100))).Tokens;
        var reference2 = (await SchedulerHarness.CollectAsync(harness.Submit(long2, 100))).Tokens;

        // Together they need 2 x 19 blocks of 34: the newest is preempted and recomputed.
        var a = harness.Submit(long1, 100);
        var b = harness.Submit(long2, 100);
        var c = harness.Submit(cases[0].Prompt, cases[0].Greedy.Length);
        Assert.Equal(reference1, (await SchedulerHarness.CollectAsync(a)).Tokens);
        Assert.Equal(reference2, (await SchedulerHarness.CollectAsync(b)).Tokens);
        Assert.Equal(cases[0].Greedy, (await SchedulerHarness.CollectAsync(c)).Tokens);
        Assert.True(harness.Scheduler.Preemptions > 0, "the KV budget should have forced a preemption");
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task SharedPrefix_IsServedFromCache_AndMatches()
    {
        await using var harness = SchedulerHarness.Start("qwen2");
        var cases = SchedulerHarness.Cases("qwen2");
        var prefix = Enumerable.Range(0, 64).Select(i => (i * 31 % 1000) + 3).ToArray();
        int[] promptA = [.. prefix, .. cases[0].Prompt];
        int[] promptB = [.. prefix, .. cases[1].Prompt];

        var alone = (await SchedulerHarness.CollectAsync(harness.Submit(promptB, 12))).Tokens;
        await SchedulerHarness.CollectAsync(harness.Submit(promptA, 12));
        var (tokens, final) = await SchedulerHarness.CollectAsync(harness.Submit(promptB, 12));
        Assert.Equal(alone, tokens);
        Assert.Equal(64, final.CachedPromptTokens);
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task ChunkedPrefill_SmallTokenBudget_Matches()
    {
        await using var harness = SchedulerHarness.Start("deepseek-v3-mla", new SchedulerOptions { MaxNumBatchedTokens = 3 });
        var cases = SchedulerHarness.Cases("deepseek-v3-mla");
        var streams = cases.Select(c => harness.Submit(c.Prompt, c.Greedy.Length)).ToList();
        for (var i = 0; i < cases.Count; i++)
        {
            Assert.Equal(cases[i].Greedy, (await SchedulerHarness.CollectAsync(streams[i])).Tokens);
        }

        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task Cancellation_EndsTheRequest_AndFreesBlocks()
    {
        await using var harness = SchedulerHarness.Start("llama-gqa");
        using var cts = new CancellationTokenSource();
        var stream = harness.Submit([5, 6, 7, 8], 400, cts.Token);
        Assert.True(await stream.WaitToReadAsync());
        await cts.CancelAsync();
        var (_, final) = await SchedulerHarness.CollectAsync(stream);
        Assert.Equal(FinishReason.Cancelled, final.Finish);
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
        Assert.Equal(0, harness.Scheduler.ActiveRequests);
    }

    [Fact]
    public async Task NChoices_SharePromptBlocks_AndMatch()
    {
        await using var harness = SchedulerHarness.Start("llama-gqa");
        var prompt = Enumerable.Range(0, 100).Select(i => (i * 17 % 1000) + 3).ToArray();
        var alone = (await SchedulerHarness.CollectAsync(harness.Submit(prompt, 12))).Tokens;

        // Fresh prompt for the group so that only siblings can share it.
        int[] groupPrompt = [.. prompt.Reverse()];
        var reference = (await SchedulerHarness.CollectAsync(harness.Submit([.. groupPrompt, 1], 1))).Tokens;
        var hitsBefore = harness.Scheduler.PrefixCacheHits;
        var group = new object();
        var streams = Enumerable.Range(0, 3).Select(_ => harness.Submit(groupPrompt, 12, group: group)).ToList();
        var results = new List<int[]>();
        foreach (var stream in streams)
        {
            results.Add((await SchedulerHarness.CollectAsync(stream)).Tokens);
        }

        Assert.All(results, r => Assert.Equal(results[0], r));
        Assert.NotEmpty(alone);
        Assert.NotEmpty(reference);

        // Every sibling after the first finds the prompt's 6 full blocks in the cache (the first found them from the warm-up).
        Assert.True(harness.Scheduler.PrefixCacheHits - hitsBefore >= 3 * 6, $"hits: {harness.Scheduler.PrefixCacheHits - hitsBefore}");
        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task NChoices_WithoutWarmCache_AdmitSiblingsAfterThePrompt()
    {
        var harness = SchedulerHarness.Create("qwen2");
        await using var _ = harness;
        var prompt = Enumerable.Range(0, 40).Select(i => (i * 29 % 1000) + 3).ToArray();
        var group = new object();
        var streams = Enumerable.Range(0, 3).Select(_ => harness.Submit(prompt, 4, group: group)).ToList();

        harness.Scheduler.Step();

        // Only the first sibling ran: it computed the prompt and produced a token; the others waited for its blocks.
        Assert.Single(SchedulerHarness.Drain(streams[0]));
        Assert.Empty(SchedulerHarness.Drain(streams[1]));
        Assert.Empty(SchedulerHarness.Drain(streams[2]));
        var hits = harness.Scheduler.PrefixCacheHits;
        harness.Scheduler.Step();
        Assert.Equal(hits + (2 * 2), harness.Scheduler.PrefixCacheHits);
    }

    [Fact]
    public async Task ChunkedPrefill_LongPromptDoesNotStallRunningDecodes()
    {
        var harness = SchedulerHarness.Create("llama-gqa", new SchedulerOptions { MaxNumBatchedTokens = 64 });
        await using var _ = harness;
        var decoding = harness.Submit([5, 6, 7], 50);
        harness.Scheduler.Step();
        Assert.Single(SchedulerHarness.Drain(decoding));

        var longPrompt = Enumerable.Range(0, 300).Select(i => (i * 7 % 1000) + 3).ToArray();
        var prefilling = harness.Submit(longPrompt, 5);

        // 300 prompt tokens at 63 per step (the decode takes one of 64) need 5 steps; the decode advances in each.
        for (var step = 0; step < 4; step++)
        {
            harness.Scheduler.Step();
            Assert.Single(SchedulerHarness.Drain(decoding));
            Assert.Empty(SchedulerHarness.Drain(prefilling));
        }

        harness.Scheduler.Step();
        Assert.Single(SchedulerHarness.Drain(decoding));
        Assert.Single(SchedulerHarness.Drain(prefilling));
    }

    [Fact]
    public async Task Priority_AdmitsLowerValueFirst()
    {
        var harness = SchedulerHarness.Create("llama-gqa", new SchedulerOptions { MaxNumSeqs = 1 });
        await using var _ = harness;
        var late = harness.Submit([5, 6, 7], 2, priority: 5);
        var urgent = harness.Submit([8, 9, 10], 2, priority: -1);
        harness.Scheduler.Step();
        Assert.Single(SchedulerHarness.Drain(urgent));
        Assert.Empty(SchedulerHarness.Drain(late));
    }
}
