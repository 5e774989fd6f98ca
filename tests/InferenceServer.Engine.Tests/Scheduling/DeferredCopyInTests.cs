using InferenceServer.Engine.Scheduling;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>
/// Host-tier copy-ins that finish after the call that asked for them (ADR 0009; what a CUDA runner's queued copies do):
/// the scheduler holds the sequence that owns such blocks, and any sequence that shares them, out of its steps until the
/// runner's fence has passed, while the other sequences keep stepping; a block is never read or written by a model call
/// before its bytes have landed, and the tokens are the ones of a run whose copies finish at once. The runner is the real
/// dense runner, whose copies are memcpy; <see cref="DeferredCopyRunner"/> reports their fences as passed only some model
/// calls later and checks every call's block tables against the fences still pending.
/// </summary>
public sealed class DeferredCopyInTests
{
    // llama-gqa: 768 bytes a token; 34 device blocks of 16 tokens, 64 in the host tier.
    private const int TokenBytes = 768;
    private const int CallsPerCopy = 3;

    private static readonly int[] Prompt = HostKvTierSchedulerTests.Prompt;
    private static readonly int[] Filler = HostKvTierSchedulerTests.Filler;
    private static readonly int[] Companion = [.. Enumerable.Range(0, 20).Select(i => (i * 11 % 1000) + 7)];
    private static readonly int[] Long1 = HostKvTierSchedulerTests.Long1;
    private static readonly int[] Long2 = HostKvTierSchedulerTests.Long2;

    [Fact]
    public async Task PrefixHitFromTheHostTier_WaitsOutOfTheSteps_WhileAnotherSequenceDecodes()
    {
        int[] first, companionAlone;
        await using (var reference = SchedulerHarness.Create("llama-gqa", Options(prefixCaching: true)))
        {
            first = Run(reference, Prompt, 12);
            companionAlone = Run(reference, Companion, 30);
        }

        DeferredCopyRunner? runner = null;
        var loadWaits = new LoadWaitRecorder();
        await using var harness = SchedulerHarness.Create("llama-gqa", Options(prefixCaching: true), inner => runner = new DeferredCopyRunner(inner, CallsPerCopy), observer: loadWaits);
        Assert.Equal(first, Run(harness, Prompt, 12));
        Run(harness, Filler, 40);
        Assert.Empty(loadWaits.Seconds);

        // The companion decodes; the prompt comes back, its blocks promoted from the tier with their fence pending.
        var companion = harness.Submit(Companion, 30);
        harness.Scheduler.Step();
        harness.Scheduler.Step();
        var again = harness.Submit(Prompt, 12);
        Drive(harness);
        Assert.Equal(companionAlone, Tokens(companion));
        Assert.Equal(first, Tokens(again));
        Assert.True(harness.Scheduler.HostPrefixCacheHitTokens >= 16, $"host-tier hits: {harness.Scheduler.HostPrefixCacheHitTokens} tokens");
        Assert.Equal(0, runner!.Violations);
        Assert.True(runner.CallsWhileLoading > 0, "no model call ran while the copies were pending: nothing overlapped them");
        Assert.Equal(0, harness.Scheduler.UsedBlocks);

        // inference_kv_load_wait_seconds: the one admission that waited for copies, once, for the model calls it sat out.
        var wait = Assert.Single(loadWaits.Seconds);
        Assert.True(wait > 0, $"load wait {wait} s");
    }

    /// <summary>Records the scheduler's host-tier load waits (inference_kv_load_wait_seconds); ignores the rest.</summary>
    private sealed class LoadWaitRecorder : InferenceServer.Engine.Observation.IEngineObserver
    {
        public List<double> Seconds { get; } = [];

        public bool InterTokenLatencyEnabled => false;

        public void Attach(InferenceServer.Engine.Observation.IEngineGauges gauges)
        {
        }

        public void RecordInterTokenLatency(double seconds)
        {
        }

        public void RecordIterationTokens(int tokens)
        {
        }

        public void RecordStepTime(double seconds, bool withPrompt)
        {
        }

        public void RecordKvLoadWait(double seconds) => Seconds.Add(seconds);

        public void RequestFinished(InferenceServer.Engine.Requests.FinishReason reason, int promptTokens, int generationTokens, double queueSeconds, double? timeToFirstTokenSeconds, double? prefillSeconds, double? decodeSeconds, double e2eSeconds)
        {
        }
    }

    [Fact]
    public async Task SecondRequestSharingBlocksStillLoading_WaitsForTheSameFence()
    {
        DeferredCopyRunner? runner = null;
        await using var harness = SchedulerHarness.Create("llama-gqa", Options(prefixCaching: true), inner => runner = new DeferredCopyRunner(inner, CallsPerCopy));
        var first = Run(harness, Prompt, 12);
        Run(harness, Filler, 40);

        // The first promotes the prompt's blocks from the tier; the second finds them in the device prefix cache at once,
        // while their bytes are still arriving.
        var a = harness.Submit(Prompt, 12);
        var b = harness.Submit(Prompt, 12);
        Drive(harness);
        Assert.Equal(first, Tokens(a));
        Assert.Equal(first, Tokens(b));
        Assert.Equal(1, runner!.FencesTaken);
        Assert.Equal(0, runner.Violations);
    }

    [Fact]
    public async Task PrefixHitWithNothingElseToRun_WaitsForTheFence_InsteadOfSpinning()
    {
        DeferredCopyRunner? runner = null;
        await using var harness = SchedulerHarness.Create("llama-gqa", Options(prefixCaching: true), inner => runner = new DeferredCopyRunner(inner, CallsPerCopy));
        var first = Run(harness, Prompt, 12);
        Run(harness, Filler, 40);
        var steps = harness.Scheduler.Steps;

        Assert.Equal(first, Run(harness, Prompt, 12));
        Assert.True(harness.Scheduler.LoadWaits > 0, "the lone returning request never waited for its copies");
        Assert.Equal(0, runner!.Violations);
        Assert.True(runner.Waits > 0);
        // 12 tokens: one prefill step and 11 decodes; no step ran empty while the copies were pending.
        Assert.Equal(12, harness.Scheduler.Steps - steps);
    }

    [Fact]
    public async Task SwapInAfterPreemption_WaitsForItsCopies_TokensExact()
    {
        int[] alone1, alone2;
        await using (var reference = SchedulerHarness.Create("llama-gqa"))
        {
            alone1 = Run(reference, Long1, 100);
            alone2 = Run(reference, Long2, 100);
        }

        DeferredCopyRunner? runner = null;
        await using var harness = SchedulerHarness.Create("llama-gqa", Options(prefixCaching: false), inner => runner = new DeferredCopyRunner(inner, CallsPerCopy));
        var a = harness.Submit(Long1, 100);
        var b = harness.Submit(Long2, 100);
        Drive(harness);
        Assert.Equal(alone1, Tokens(a));
        Assert.Equal(alone2, Tokens(b));
        Assert.True(harness.Scheduler.SwappedInBlocks > 0, "nothing was swapped back in");
        Assert.Equal(0, runner!.Violations);
        Assert.True(runner.FencesTaken > 0);
        Assert.Equal(0, harness.Scheduler.HostTierUsedBlocks);
        Assert.Equal(0, harness.Scheduler.UsedBlocks);
    }

    [Fact]
    public async Task CancellingALoadingRequest_WaitsForItsCopiesBeforeItsBlocksAreFreed()
    {
        DeferredCopyRunner? runner = null;
        await using var harness = SchedulerHarness.Create("llama-gqa", Options(prefixCaching: true), inner => runner = new DeferredCopyRunner(inner, 1000));
        var first = Run(harness, Prompt, 12);
        Run(harness, Filler, 40);

        // Its copies never pass on their own: it is admitted, loads, and is cancelled while loading.
        using var cancel = new CancellationTokenSource();
        var companion = harness.Submit(Companion, 30);
        var loading = harness.Submit(Prompt, 12, cancel.Token);
        for (var i = 0; i < 4; i++)
        {
            harness.Scheduler.Step();
        }

        Assert.True(runner!.Pending > 0, "no copy-in was pending");
        await cancel.CancelAsync();
        Drive(harness);
        Assert.Equal(0, runner.Violations);
        Assert.Equal(0, runner.Pending);
        Assert.Equal(30, Tokens(companion).Length);
        Assert.Empty(Tokens(loading));
        Assert.Equal(0, harness.Scheduler.UsedBlocks);

        // The blocks it loaded stay findable (their bytes landed before they were freed).
        Assert.Equal(first, Run(harness, Prompt, 12));
    }

    private static SchedulerOptions Options(bool prefixCaching) => new()
    {
        KvCacheMemory = TokenBytes * 16 * 34,
        BlockSize = 16,
        EnablePrefixCaching = prefixCaching,
        HostKvCacheMemory = TokenBytes * 16 * 64,
    };

    private static int[] Run(SchedulerHarness harness, int[] prompt, int maxTokens)
    {
        var stream = harness.Submit(prompt, maxTokens);
        Drive(harness);
        return Tokens(stream);
    }

    private static int[] Tokens(System.Threading.Channels.ChannelReader<InferenceServer.Engine.Requests.GenerationUpdate> stream) =>
        [.. SchedulerHarness.Drain(stream).Where(u => u.TokenId >= 0).Select(u => u.TokenId)];

    private static void Drive(SchedulerHarness harness) => harness.DriveToEnd();

    /// <summary>
    /// The real runner, whose block copies land at once, reporting each copy-in's fence as passed only
    /// <paramref name="calls"/> model calls after it was taken (or when waited for); counts the model calls that touch a
    /// block whose fence has not passed (or that was copied in without a fence taken since).
    /// </summary>
    private sealed class DeferredCopyRunner(IModelRunner inner, int calls) : IModelRunner, IKvBlockTransfer
    {
        private const long Unfenced = -1;
        private readonly IKvBlockTransfer _transfer = (IKvBlockTransfer)inner;
        private readonly Dictionary<int, long> _pendingBlocks = [];
        private readonly Dictionary<long, int> _passesAt = [];
        private long _fence;
        private int _calls;

        public int Violations { get; private set; }

        public int CallsWhileLoading { get; private set; }

        public int Waits { get; private set; }

        public int FencesTaken => (int)_fence;

        public int Pending => _pendingBlocks.Count(p => p.Value == Unfenced || !Passed(p.Value));

        public ModelSpec Spec => inner.Spec;

        public int BlockCount => inner.BlockCount;

        public int BlockSize => inner.BlockSize;

        public int BlockBytes => _transfer.BlockBytes;

        public IReadOnlyList<KvPoolRange> Pools => _transfer.Pools;

        bool IModelRunner.RunsMixedBatches => inner.RunsMixedBatches;

        bool IModelRunner.ReportsArgmax => inner.ReportsArgmax;

        public void Forward(ForwardBatch batch, Span<float> logits)
        {
            for (var r = 0; r < batch.RowCount; r++)
            {
                foreach (var block in batch.BlockTable(r))
                {
                    if (_pendingBlocks.TryGetValue(block, out var fence) && (fence == Unfenced || !Passed(fence)))
                    {
                        Violations++;
                    }
                }
            }

            CallsWhileLoading += _passesAt.Values.Any(at => at > _calls) ? 1 : 0;
            _calls++;
            inner.Forward(batch, logits);
        }

        public void CopyOut(int block, Span<byte> destination) => _transfer.CopyOut(block, destination);

        public void CopyIn(int block, ReadOnlySpan<byte> source)
        {
            _transfer.CopyIn(block, source);
            _pendingBlocks[block] = Unfenced;
        }

        public long CopyInFence()
        {
            if (_pendingBlocks.ContainsValue(Unfenced))
            {
                _fence++;
                _passesAt[_fence] = _calls + calls;
                foreach (var block in _pendingBlocks.Where(p => p.Value == Unfenced).Select(p => p.Key).ToList())
                {
                    _pendingBlocks[block] = _fence;
                }
            }

            return _fence != 0 && !Passed(_fence) ? _fence : 0;
        }

        public bool CopyInDone(long fence) => Passed(fence);

        public void WaitCopyIn(long fence)
        {
            // Copies finish in order: this fence and every earlier one pass now.
            foreach (var earlier in _passesAt.Keys.Where(f => f <= fence && !Passed(f)).ToList())
            {
                _passesAt[earlier] = _calls;
                Waits++;
            }
        }

        public void Dispose() => inner.Dispose();

        private bool Passed(long fence) => fence == 0 || _passesAt[fence] <= _calls;
    }
}
