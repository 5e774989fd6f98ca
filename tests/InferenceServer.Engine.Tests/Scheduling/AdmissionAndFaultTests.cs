// Licensed under the MIT License. See LICENSE in the repository root.
using System.Threading.Channels;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>
/// Bounded admission by sequences and by prompt tokens, all or nothing; a failed model step fails only its rows; repeated
/// failures make the engine unhealthy, drain it and refuse work until the cooldown, after which a good step heals it.
/// The loop is not started: each test drives <see cref="ContinuousBatchScheduler.Step"/> itself.
/// </summary>
public sealed class AdmissionAndFaultTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new();
    private ServedModel? _model;
    private FaultInjectingRunner? _runner;
    private ContinuousBatchScheduler? _scheduler;

    private ContinuousBatchScheduler Scheduler => _scheduler!;

    private FaultInjectingRunner Runner => _runner!;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_scheduler is not null)
        {
            await _scheduler.DisposeAsync();
        }

        _model?.Dispose();
    }

    private void Create(SchedulerOptions options)
    {
        _model = ServedModel.Load(SchedulerHarness.Fixture("llama-gqa"));
        _runner = new FaultInjectingRunner(_model.CreateRunner(options.KvBudget));
        _scheduler = new ContinuousBatchScheduler(_model, _runner, options, NullLogger<ContinuousBatchScheduler>.Instance, observer: null, _time);
    }

    private static int[] Prompt(int length, int salt = 0) => Enumerable.Range(0, length).Select(i => ((i * 7) + salt) % 900 + 3).ToArray();

    private SubmitResult Submit(int[] prompt, out ChannelReader<GenerationUpdate> updates, int maxTokens = 4, CancellationToken cancellationToken = default)
    {
        var readers = new ChannelReader<GenerationUpdate>[1];
        var result = Scheduler.Submit([SchedulerHarness.Request(prompt, maxTokens)], readers, cancellationToken);
        updates = readers[0];
        return result;
    }

    private void StepUntilIdle()
    {
        for (var i = 0; i < 10_000 && Scheduler.ActiveRequests > 0; i++)
        {
            Scheduler.Step();
        }

        Assert.Equal(0, Scheduler.ActiveRequests);
    }

    private static GenerationUpdate Final(ChannelReader<GenerationUpdate> updates)
    {
        var all = SchedulerHarness.Drain(updates);
        Assert.True(updates.Completion.IsCompleted);
        return Assert.Single(all, u => u.IsFinal);
    }

    [Fact]
    public void Queue_IsBoundedBySequences_AndFreesAsTheyAreAdmitted()
    {
        Create(new SchedulerOptions { MaxQueuedRequests = 2 });
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(5), out var a));
        Assert.False(Scheduler.IsQueueFull);
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(5, 1), out var b));
        Assert.True(Scheduler.IsQueueFull);
        Assert.Equal(SubmitResult.QueueFull, Submit(Prompt(5, 2), out _));
        Assert.Equal(2, Scheduler.QueuedRequests);
        Assert.Equal(10, Scheduler.QueuedTokens);

        // One step admits both to the batch: the queue is empty though they still run.
        Scheduler.Step();
        Assert.Equal(0, Scheduler.QueuedRequests);
        Assert.Equal(0, Scheduler.QueuedTokens);
        Assert.Equal(2, Scheduler.ActiveRequests);
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(5, 3), out var c));
        StepUntilIdle();
        Assert.Equal(FinishReason.Length, Final(a).Finish);
        Assert.Equal(FinishReason.Length, Final(b).Finish);
        Assert.Equal(FinishReason.Length, Final(c).Finish);
        Assert.Equal(0, Scheduler.UsedBlocks);
    }

    [Fact]
    public void Queue_IsBoundedByPromptTokens_ButAnEmptyQueueTakesAnySize()
    {
        Create(new SchedulerOptions { MaxQueuedTokens = 10 });
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(8), out _));
        Assert.Equal(SubmitResult.QueueFull, Submit(Prompt(3), out _));
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(2), out _));
        Assert.True(Scheduler.IsQueueFull);
        StepUntilIdle();

        // Larger than the bound on its own: accepted only because nothing is queued, so it is never refused for ever.
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(50), out var big));
        Assert.Equal(SubmitResult.QueueFull, Submit(Prompt(1), out _));
        StepUntilIdle();
        Assert.Equal(FinishReason.Length, Final(big).Finish);
    }

    [Fact]
    public void Submit_IsAllOrNothing()
    {
        Create(new SchedulerOptions { MaxQueuedRequests = 3 });
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(4), out _));
        var readers = new ChannelReader<GenerationUpdate>[3];
        var three = new[] { SchedulerHarness.Request(Prompt(4, 1), 2), SchedulerHarness.Request(Prompt(4, 2), 2), SchedulerHarness.Request(Prompt(4, 3), 2) };
        Assert.Equal(SubmitResult.QueueFull, Scheduler.Submit(three, readers, CancellationToken.None));
        Assert.Equal(1, Scheduler.QueuedRequests);
        Assert.Equal(1, Scheduler.ActiveRequests);
        StepUntilIdle();
        Assert.Equal(SubmitResult.Accepted, Scheduler.Submit(three, readers, CancellationToken.None));
        StepUntilIdle();
        Assert.All(readers, r => Assert.Equal(FinishReason.Length, Final(r).Finish));
    }

    [Fact]
    public void CancelledWhileQueued_LeavesTheQueue()
    {
        Create(new SchedulerOptions { MaxQueuedRequests = 1 });
        using var cts = new CancellationTokenSource();
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(6), out var updates, cancellationToken: cts.Token));
        cts.Cancel();
        Scheduler.Step();
        Assert.Equal(FinishReason.Cancelled, Final(updates).Finish);
        Assert.Equal(0, Scheduler.QueuedRequests);
        Assert.Equal(0, Scheduler.QueuedTokens);
        Assert.Equal(0, Scheduler.ActiveRequests);
        Assert.Equal(0, Scheduler.UsedBlocks);
    }

    [Fact]
    public void FailedStep_FailsItsRows_AndTheEngineServesTheNextRequestCorrectly()
    {
        Create(new SchedulerOptions());
        var reference = SchedulerHarness.Cases("llama-gqa")[0];
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(9), out var a));
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(9, 5), out var b));
        Runner.FailNext = 1;
        Scheduler.Step();
        foreach (var failed in new[] { Final(a), Final(b) })
        {
            Assert.Equal(FinishReason.Error, failed.Finish);
            Assert.Contains("injected fault: device lost", failed.Error, StringComparison.Ordinal);
        }

        Assert.Equal(0, Scheduler.UsedBlocks);
        Assert.Equal(1, Scheduler.ConsecutiveStepFailures);
        Assert.True(Scheduler.IsHealthy);

        Assert.Equal(SubmitResult.Accepted, Submit(reference.Prompt, out var good, reference.Greedy.Length));
        StepUntilIdle();
        var updates = SchedulerHarness.Drain(good);
        Assert.Equal(reference.Greedy, updates.Where(u => u.TokenId >= 0).Select(u => u.TokenId).ToArray());
        Assert.Equal(0, Scheduler.ConsecutiveStepFailures);
        Assert.Equal(0, Scheduler.UsedBlocks);
    }

    [Fact]
    public void RepeatedFaults_MakeTheEngineUnhealthy_FailItsQueue_AndACooldownThenAGoodStepHealIt()
    {
        Create(new SchedulerOptions { MaxNumSeqs = 1, MaxConsecutiveStepFailures = 3, FaultCooldown = TimeSpan.FromSeconds(30) });
        Runner.FailNext = int.MaxValue;
        var failed = new List<ChannelReader<GenerationUpdate>>();
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(SubmitResult.Accepted, Submit(Prompt(6, i), out var one));
            Scheduler.Step();
            failed.Add(one);
            Assert.True(Scheduler.IsHealthy);
        }

        // The third failure: its row fails with the fault, the request still waiting (one sequence per step) is failed
        // without running, and the engine refuses work.
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(6, 7), out var third));
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(6, 8), out var waiting));
        Scheduler.Step();
        Assert.False(Scheduler.IsHealthy);
        Assert.False(Scheduler.AcceptsWork);
        Assert.Equal(FinishReason.Error, Final(third).Finish);
        var drained = Final(waiting);
        Assert.Equal(FinishReason.Cancelled, drained.Finish);
        Assert.Contains("3 model steps in a row failed", drained.Error, StringComparison.Ordinal);
        Assert.All(failed, r => Assert.Equal(FinishReason.Error, Final(r).Finish));
        Assert.Equal(SubmitResult.Unavailable, Submit(Prompt(6), out _));
        Assert.Equal(0, Scheduler.ActiveRequests);
        Assert.Equal(0, Scheduler.QueuedRequests);
        Assert.Equal(0, Scheduler.UsedBlocks);
        var forwards = Runner.Forwards;
        Scheduler.Step();
        Assert.Equal(forwards, Runner.Forwards);

        // Cooldown over: a probe is accepted; still failing, it restarts the cooldown.
        _time.Advance(TimeSpan.FromSeconds(31));
        Assert.True(Scheduler.AcceptsWork);
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(6), out var probe));
        Scheduler.Step();
        Assert.Equal(FinishReason.Error, Final(probe).Finish);
        Assert.False(Scheduler.AcceptsWork);

        // The fault clears: after the next cooldown the first good step makes the engine healthy.
        Runner.FailNext = 0;
        _time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(6), out var healed, 3));
        StepUntilIdle();
        Assert.Equal(FinishReason.Length, Final(healed).Finish);
        Assert.True(Scheduler.IsHealthy);
        Assert.True(Scheduler.AcceptsWork);
        Assert.Equal(0, Scheduler.UsedBlocks);
    }

    [Fact]
    public void TerminatedConstraint_EndsTheSequenceAtEos_EvenWithIgnoreEos()
    {
        Create(new SchedulerOptions());
        var eos = _model!.EosTokenIds[0];
        var constraint = new TerminatingConstraint(10, eos);
        var readers = new ChannelReader<GenerationUpdate>[1];
        Assert.Equal(SubmitResult.Accepted, Scheduler.Submit([SchedulerHarness.Request(Prompt(6), 20, constraint: constraint, ignoreEos: true)], readers, CancellationToken.None));
        StepUntilIdle();
        var updates = SchedulerHarness.Drain(readers[0]);
        Assert.Equal([10, eos], updates.Where(u => u.TokenId >= 0).Select(u => u.TokenId).ToArray());
        Assert.Equal(FinishReason.Stop, updates[^1].Finish);
        Assert.Equal(0, Scheduler.UsedBlocks);
    }

    [Fact]
    public void ConstraintOverItsBudget_FailsOnlyItsOwnRequest()
    {
        // A structured-output mask whose work passes its budget throws (issue 22): that request ends with its own error,
        // the request batched beside it runs to its length, and the engine stays healthy.
        Create(new SchedulerOptions());
        var readers = new ChannelReader<GenerationUpdate>[1];
        Assert.Equal(SubmitResult.Accepted, Scheduler.Submit([SchedulerHarness.Request(Prompt(6), 8, constraint: new OverBudgetConstraint())], readers, CancellationToken.None));
        Assert.Equal(SubmitResult.Accepted, Submit(Prompt(6, salt: 1), out var other, maxTokens: 8));
        StepUntilIdle();
        var failed = Final(readers[0]);
        Assert.Equal(FinishReason.Error, failed.Finish);
        Assert.Contains("MaxMaskWork", failed.Error, StringComparison.Ordinal);
        Assert.True(failed.RequestFault);
        Assert.Equal(FinishReason.Length, Final(other).Finish);
        Assert.True(Scheduler.IsHealthy);
        Assert.Equal(0, Scheduler.UsedBlocks);
    }

    /// <summary>Throws from every mask, as a constraint whose mask work passes its budget does.</summary>
    private sealed class OverBudgetConstraint : ITokenConstraint
    {
        public void MaskLogits(Span<float> logits) => throw new InvalidOperationException("The mask needed more than 10 matcher steps (limit MaxMaskWork).");

        public bool Accept(int tokenId) => true;
    }

    /// <summary>Allows exactly the given tokens in order, the last an EOS; after it, it is terminated and allows nothing.</summary>
    private sealed class TerminatingConstraint(params int[] tokens) : ITokenConstraint
    {
        private int _next;

        public bool IsTerminated => _next == tokens.Length;

        public void MaskLogits(Span<float> logits)
        {
            for (var i = 0; i < logits.Length; i++)
            {
                if (_next >= tokens.Length || i != tokens[_next])
                {
                    logits[i] = float.NegativeInfinity;
                }
            }
        }

        public bool Accept(int tokenId) => _next < tokens.Length && tokens[_next++] == tokenId;
    }
}
