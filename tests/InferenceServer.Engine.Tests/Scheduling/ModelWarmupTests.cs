// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>
/// <see cref="ModelWarmup"/> (<c>--warmup</c>): the shapes it runs before the server takes requests, and that a runner
/// warmed up then serves the reference tokens (the warm-up's writes into the pool's first blocks never leak into a
/// request). Whether it removes ONNX Runtime's first-shape stalls is a GPU measurement (ADR 0008).
/// </summary>
public sealed class ModelWarmupTests
{
    [Fact]
    public void Plan_ServerDefaults_EveryDecodeBucketThrice_ThenPowersOfTwoUpToTheTokenBudget()
    {
        var plan = ModelWarmup.Plan(maxNumSeqs: 256, maxNumBatchedTokens: 8192, blockSize: 64, blockCount: 10_000, contextLength: 163_840);

        var decodes = plan.Where(s => s.TokensPerRow == 1).ToList();
        Assert.Equal([1, 2, 4, 8, .. Enumerable.Range(2, 31).Select(i => i * 8)], decodes.Select(s => s.Rows));
        Assert.All(decodes, s => Assert.Equal(ModelWarmup.DecodeRuns, s.Runs));
        var prompts = plan.Where(s => s.TokensPerRow > 1).ToList();
        Assert.Equal([(1, 512), (2, 512), (4, 512), (8, 512), (16, 512)], prompts.Select(s => (s.Rows, s.TokensPerRow)));
        Assert.All(prompts, s => Assert.Equal(1, s.Runs));
    }

    [Theory]
    [InlineData(64, 600, 16, 100, 512, 600)] // a budget that is no power of two: its last step is the budget itself
    [InlineData(8, 8192, 64, 20, 163_840, 1024)] // a small pool caps the decode rows and the prompt rows (2 rows of 8 blocks)
    [InlineData(4, 100, 16, 1_000, 128, 100)] // a budget under 512: one prompt step of the budget
    [InlineData(256, 8192, 16, 1_000, 64, 8122)] // a short context: rows of at most 63 tokens, 131 of 62 for the budget
    public void Plan_NeverNeedsMoreBlocksTokensOrPositionsThanTheServerHas(int seqs, int budget, int blockSize, int blocks, int context, int largest)
    {
        var plan = ModelWarmup.Plan(seqs, budget, blockSize, blocks, context);

        Assert.NotEmpty(plan);
        foreach (var step in plan)
        {
            Assert.True(step.Rows * step.TokensPerRow <= budget, $"{step} is over the {budget}-token budget");
            Assert.True(step.Rows * ((step.TokensPerRow + blockSize - 1) / blockSize) <= blocks, $"{step} needs more than {blocks} blocks");
            Assert.True(step.TokensPerRow < context, $"{step} passes the {context}-position context");
            Assert.True(step.TokensPerRow > 1 || step.Rows <= seqs, $"{step} has more decode rows than --max-num-seqs {seqs}");
        }

        // The largest step: the budget itself unless the pool or the context keeps it smaller.
        Assert.Equal(largest, plan.Max(s => s.Rows * s.TokensPerRow));
    }

    [Fact]
    public async Task WarmedUpRunner_ServesTheReferenceTokens()
    {
        var options = new SchedulerOptions { MaxNumSeqs = 4, MaxNumBatchedTokens = 600 };
        var model = ServedModel.Load(SchedulerHarness.Fixture("llama-gqa"));
        var runner = model.CreateRunner(options.KvBudget);
        var plan = ModelWarmup.Plan(options.MaxNumSeqs, options.MaxNumBatchedTokens, runner.BlockSize, runner.BlockCount, model.Spec.ContextLength);
        var (calls, _) = ModelWarmup.Run(runner, plan);
        Assert.Equal(plan.Sum(s => s.Runs), calls);
        Assert.Contains(plan, s => s.Rows * s.TokensPerRow == 600);

        await using var scheduler = new ContinuousBatchScheduler(model, runner, options, NullLogger.Instance, null, null);
        scheduler.Start();
        var cases = SchedulerHarness.Cases("llama-gqa");
        foreach (var (prompt, greedy) in cases)
        {
            Assert.True(scheduler.TrySubmit(SchedulerHarness.Request(prompt, greedy.Length), out var updates, CancellationToken.None));
            Assert.Equal(greedy, (await SchedulerHarness.CollectAsync(updates)).Tokens);
        }
    }

    [Fact]
    public async Task WarmUpOn_SchedulerStartsAndMatchesTheReference()
    {
        await using var harness = SchedulerHarness.Start("llama-gqa", new SchedulerOptions { WarmUp = true, MaxNumSeqs = 4, MaxNumBatchedTokens = 600 });
        var cases = SchedulerHarness.Cases("llama-gqa");
        var streams = cases.Select(c => harness.Submit(c.Prompt, c.Greedy.Length)).ToList();
        for (var i = 0; i < cases.Count; i++)
        {
            Assert.Equal(cases[i].Greedy, (await SchedulerHarness.CollectAsync(streams[i])).Tokens);
        }

        await harness.WaitIdleAsync();
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    /// <summary>
    /// The warm-up runs on the scheduler's own thread, the one every later step runs on (ONNX Runtime keeps a session's
    /// CUDA graphs per thread: graphs captured on the caller's thread would be captured again by the loop), and
    /// <see cref="ContinuousBatchScheduler.Start"/> returns once it is done.
    /// </summary>
    [Fact]
    public async Task WarmUp_RunsOnTheSchedulerThread_BeforeStartReturns()
    {
        ThreadRecordingRunner? runner = null;
        await using var harness = SchedulerHarness.Create("llama-gqa", new SchedulerOptions { WarmUp = true, MaxNumSeqs = 4, MaxNumBatchedTokens = 600 }, inner => runner = new ThreadRecordingRunner(inner));
        harness.Scheduler.Start();
        var warmUpCalls = runner!.Threads.Count;
        Assert.True(warmUpCalls > 0, "Start returned before the warm-up ran");
        var cases = SchedulerHarness.Cases("llama-gqa");
        Assert.Equal(cases[0].Greedy, (await SchedulerHarness.CollectAsync(harness.Submit(cases[0].Prompt, cases[0].Greedy.Length))).Tokens);
        Assert.True(runner.Threads.Count > warmUpCalls);
        var thread = Assert.Single(runner.Threads.Distinct());
        Assert.NotEqual(Environment.CurrentManagedThreadId, thread);
    }

    /// <summary>The real runner, recording the managed thread of every forward pass.</summary>
    private sealed class ThreadRecordingRunner(InferenceServer.Onnx.Runtime.IModelRunner inner) : InferenceServer.Onnx.Runtime.IModelRunner
    {
        public System.Collections.Concurrent.ConcurrentQueue<int> Threads { get; } = new();

        public InferenceServer.Onnx.Runtime.ModelSpec Spec => inner.Spec;

        public int BlockCount => inner.BlockCount;

        public int BlockSize => inner.BlockSize;

        public void Forward(InferenceServer.Onnx.Runtime.ForwardBatch batch, Span<float> logits)
        {
            Threads.Enqueue(Environment.CurrentManagedThreadId);
            inner.Forward(batch, logits);
        }

        public void Dispose() => inner.Dispose();
    }
}
