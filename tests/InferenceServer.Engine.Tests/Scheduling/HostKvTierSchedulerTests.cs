using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>
/// The host KV tier (ADR 0009) on the real dense runner: preempted sequences are copied out and back instead of recomputed,
/// evicted prefix blocks are served from it, and cancelled or finished requests leave none of its blocks in use. The
/// scheduler is stepped by the test (no loop thread), so preemption happens at the same step every run.
/// </summary>
public sealed class HostKvTierSchedulerTests
{
    // llama-gqa: 3 layers x (2 + 2 heads) x 16 wide x 4 bytes = 768 bytes a token; 34 blocks of 16 tokens.
    private const int TokenBytes = 768;
    private const double DeviceBytes = TokenBytes * 16 * 34;
    private const double HostBytes = TokenBytes * 16 * 64;

    /// <summary>Two 200-token prompts whose 100 new tokens each outgrow, together, the 34-block pool (one is preempted).</summary>
    internal static readonly int[] Long1 = [.. Enumerable.Range(0, 200).Select(i => (i * 7 % 1000) + 3)];
    internal static readonly int[] Long2 = [.. Enumerable.Range(0, 200).Select(i => (i * 13 % 1000) + 3)];

    /// <summary>A 100-token prompt, and a 450-token filler whose 31 blocks push the prompt's freed blocks to the host tier.</summary>
    internal static readonly int[] Prompt = [.. Enumerable.Range(0, 100).Select(i => (i * 31 % 1000) + 3)];
    internal static readonly int[] Filler = [.. Enumerable.Range(0, 450).Select(i => (i * 17 % 1000) + 5)];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Preemption_WithHostTier_SwapsInstead_TokensExact_LessRecompute(bool prefixCaching)
    {
        var cases = SchedulerHarness.Cases("llama-gqa");
        int[] alone1, alone2;
        await using (var reference = SchedulerHarness.Create("llama-gqa"))
        {
            alone1 = Run(reference, [Long1], 100)[0];
            alone2 = Run(reference, [Long2], 100)[0];
        }

        long recomputedWithout;
        await using (var without = SchedulerHarness.Create("llama-gqa", Options(prefixCaching, host: 0)))
        {
            var results = Run(without, [Long1, Long2, cases[0].Prompt], 100);
            Assert.Equal(alone1, results[0]);
            Assert.Equal(alone2, results[1]);
            Assert.True(without.Scheduler.Preemptions > 0, "the KV budget should have forced a preemption");
            Assert.Equal(0, without.Scheduler.SwappedOutBlocks);
            recomputedWithout = without.Scheduler.RecomputedTokens;
            Assert.True(recomputedWithout > 0);
        }

        await using var with = SchedulerHarness.Create("llama-gqa", Options(prefixCaching, host: HostBytes));
        Assert.Equal(64, with.Scheduler.HostTierBlocks);
        var tiered = Run(with, [Long1, Long2, cases[0].Prompt], 100);
        Assert.Equal(alone1, tiered[0]);
        Assert.Equal(alone2, tiered[1]);
        Assert.Equal(cases[0].Greedy, tiered[2][..cases[0].Greedy.Length]);
        Assert.True(with.Scheduler.Preemptions > 0, "the KV budget should have forced a preemption");
        Assert.True(with.Scheduler.RecomputedTokens < recomputedWithout, $"recomputed {with.Scheduler.RecomputedTokens} tokens with the tier, {recomputedWithout} without");
        if (prefixCaching)
        {
            // Every full block of a preempted sequence is in the device prefix cache: none is copied at preemption; the
            // blocks the pool reuses meanwhile are demoted to the tier and found there by the resumed sequence's lookup.
            Assert.Equal(0, with.Scheduler.SwappedOutBlocks);
            Assert.True(with.Scheduler.HostPrefixCacheHitTokens > 0, "the resumed sequence found nothing in the host tier");
        }
        else
        {
            // Without the device prefix cache, everything restored came from the host tier, copied out at preemption.
            Assert.True(with.Scheduler.SwappedOutBlocks > 0);
            Assert.True(with.Scheduler.SwappedInBlocks > 0);
        }

        Assert.Equal(0, with.Scheduler.HostTierUsedBlocks);
        Assert.Equal(0, with.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task EvictedPrefixBlocks_AreServedFromTheHostTier_TokensExact()
    {
        var prompt = Prompt;
        var filler = Filler;
        await using var harness = SchedulerHarness.Create("llama-gqa", Options(prefixCaching: true, host: HostBytes));
        var first = Run(harness, [prompt], 12)[0];

        // 31 blocks for the filler: the 27 never used first, then the prompt's freed blocks, last first, go to the host tier.
        Run(harness, [filler], 40);
        Assert.Equal(0, harness.Scheduler.HostPrefixCacheHitTokens);

        var stream = harness.Submit(prompt, 12);
        Drive(harness);
        var (again, final) = await SchedulerHarness.CollectAsync(stream);
        Assert.Equal(first, again);
        Assert.Equal(96, final.CachedPromptTokens);
        Assert.True(harness.Scheduler.HostPrefixCacheHitTokens >= 16, $"host-tier hits: {harness.Scheduler.HostPrefixCacheHitTokens} tokens");
        Assert.True(harness.Scheduler.HostPrefixCacheQueryTokens >= harness.Scheduler.HostPrefixCacheHitTokens);
    }

    [Fact]
    public async Task CancellingAPreemptedRequest_FreesItsHostBlocks()
    {
        await using var harness = SchedulerHarness.Create("llama-gqa", Options(prefixCaching: false, host: HostBytes));
        using var cancel = new CancellationTokenSource();
        var a = harness.Submit(Long1, 100);
        var b = harness.Submit(Long2, 100, cancel.Token);
        for (var i = 0; i < 1000 && harness.Scheduler.HostTierUsedBlocks == 0; i++)
        {
            harness.Scheduler.Step();
        }

        Assert.True(harness.Scheduler.HostTierUsedBlocks > 0, "no sequence was swapped out");
        await cancel.CancelAsync();
        harness.Scheduler.Step();
        Assert.Equal(0, harness.Scheduler.HostTierUsedBlocks);
        Drive(harness);
        Assert.Equal(FinishReason.Cancelled, (await SchedulerHarness.CollectAsync(b)).Final.Finish);
        Assert.Equal(100, (await SchedulerHarness.CollectAsync(a)).Tokens.Length);
        Assert.Equal(0, harness.Scheduler.HostTierUsedBlocks);
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public void HostTierTooSmallForOneBlock_IsRefusedNamingTheFlag()
    {
        var error = Assert.Throws<InvalidOperationException>(() => SchedulerHarness.Create("llama-gqa", Options(prefixCaching: true, host: 100)));
        Assert.Contains("--host-kv-cache-memory", error.Message, StringComparison.Ordinal);
    }

    private static SchedulerOptions Options(bool prefixCaching, double host) => new()
    {
        KvCacheMemory = DeviceBytes,
        BlockSize = 16,
        EnablePrefixCaching = prefixCaching,
        HostKvCacheMemory = host,
    };

    /// <summary>Submits <paramref name="prompts"/> together, steps until all finish, and returns each one's tokens.</summary>
    private static List<int[]> Run(SchedulerHarness harness, int[][] prompts, int maxTokens)
    {
        var streams = prompts.Select(p => harness.Submit(p, maxTokens)).ToList();
        Drive(harness);
        return [.. streams.Select(s => SchedulerHarness.Drain(s).Where(u => u.TokenId >= 0).Select(u => u.TokenId).ToArray())];
    }

    private static void Drive(SchedulerHarness harness) => harness.DriveToEnd();
}
