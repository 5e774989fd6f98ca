using InferenceServer.Engine.KvCache;
using InferenceServer.Engine.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>
/// <see cref="SchedulerOptions"/> is valid once built (a bad value names the flag the host maps to it), and the scheduler
/// never writes it: the KV-cache manager is sized from the numbers the runner reports.
/// </summary>
public sealed class SchedulerOptionsTests
{
    public static TheoryData<Func<SchedulerOptions>, string> BadValues => new()
    {
        { () => new SchedulerOptions { MaxNumSeqs = 0 }, "--max-num-seqs" },
        { () => new SchedulerOptions { MaxNumBatchedTokens = -1 }, "--max-num-batched-tokens" },
        { () => new SchedulerOptions { BlockSize = 0 }, "--block-size" },
        { () => new SchedulerOptions { KvCacheMemory = 0 }, "--kv-cache-memory" },
        { () => new SchedulerOptions { KvCacheMemory = double.NaN }, "--kv-cache-memory" },
        { () => new SchedulerOptions { MaxQueuedRequests = 0 }, "--max-queued-requests" },
        { () => new SchedulerOptions { MaxQueuedTokens = 0 }, "--max-queued-tokens" },
        { () => new SchedulerOptions { MaxConsecutiveStepFailures = 0 }, "--max-consecutive-step-failures" },
        { () => new SchedulerOptions { FaultCooldown = TimeSpan.Zero }, "--fault-cooldown" },
    };

    [Theory]
    [MemberData(nameof(BadValues))]
    public void BadValue_ThrowsNamingTheFlag(Func<SchedulerOptions> create, string flag)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(create);
        Assert.StartsWith(flag + " must be", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Defaults_AreValid_AndMakeTheBudget()
    {
        var options = new SchedulerOptions();
        Assert.Equal(new KvBudget(256L * 1024 * 1024, 16), options.KvBudget);
        Assert.Equal(64, options.MaxNumSeqs);
        Assert.Equal(TimeSpan.FromSeconds(30), options.FaultCooldown);
    }

    [Fact]
    public void BudgetWith_BadMemory_ThrowsNamingTheFlag()
    {
        var budget = new SchedulerOptions().KvBudget;
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => budget with { Memory = -5 });
        Assert.StartsWith("--kv-cache-memory must be", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scheduler_SizesItsKvCacheFromTheRunner_AndLeavesTheOptionsAlone()
    {
        using var model = ServedModel.Load(SchedulerHarness.Fixture("llama-gqa"));
        var options = new SchedulerOptions { BlockSize = 16, KvCacheMemory = 768 * 16 * 40 };

        // A runner negotiated from another budget than the options': the scheduler believes the runner.
        var runner = model.CreateRunner(new KvBudget(768 * 32 * 21, 32));
        await using var scheduler = new ContinuousBatchScheduler(model, runner, options, NullLogger.Instance, observer: null, time: null);

        Assert.Equal(32, runner.BlockSize);
        Assert.Equal(21, runner.BlockCount);
        Assert.Equal(runner.BlockSize, scheduler.BlockSize);
        Assert.Equal(runner.BlockCount, scheduler.TotalBlocks);
        Assert.Equal(16, options.BlockSize);
        Assert.Equal(768 * 16 * 40, options.KvCacheMemory);
    }

    [Fact]
    public void CreateRunner_BudgetBelowOneContext_ThrowsNamingTheFlag()
    {
        using var model = ServedModel.Load(SchedulerHarness.Fixture("llama-gqa"));

        // 512 positions need 32 blocks of 16 tokens (768 bytes each per token); 31 blocks' worth is one short.
        var error = Assert.Throws<InvalidOperationException>(() => model.CreateRunner(new KvBudget(768 * 16 * 31, 16)));
        Assert.StartsWith("--kv-cache-memory: ", error.Message, StringComparison.Ordinal);
        Assert.Contains("(32 blocks,", error.Message, StringComparison.Ordinal);
    }
}
