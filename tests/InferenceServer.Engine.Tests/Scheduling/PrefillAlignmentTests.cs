// Licensed under the MIT License. See LICENSE in the repository root.
using System.Threading.Channels;
using InferenceServer.Engine.Requests;
using InferenceServer.Engine.Scheduling;
using InferenceServer.Onnx.Runtime;
using Microsoft.Extensions.Logging.Abstractions;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>
/// <see cref="SchedulerOptions.PrefillChunkAlignment"/> (<c>--deterministic</c>): a prompt that the token budget cuts is
/// cut at multiples of the alignment, so it is computed in the same pieces alone and beside running decodes; without it
/// the cuts follow what the decodes leave of the budget.
/// </summary>
public sealed class PrefillAlignmentTests
{
    private const int Alignment = 32;

    [Fact]
    public async Task AlignedPrompt_IsCutTheSameWay_AloneAndBesideDecodes()
    {
        var (alone, aloneTokens) = await CutsAsync(decodes: 0, Alignment);
        var (beside, besideTokens) = await CutsAsync(decodes: 3, Alignment);
        // The last chunk ends at the prompt's end: [64, 100) fits the budget whole.
        Assert.Equal([(0, 32), (32, 32), (64, 36)], alone);
        Assert.Equal(alone, beside);
        Assert.Equal(aloneTokens, besideTokens);

        // Without the alignment the same two runs cut the prompt differently (the decodes take 3 of the 40 tokens).
        var (unaligned, _) = await CutsAsync(decodes: 0, 0);
        var (unalignedBeside, _) = await CutsAsync(decodes: 3, 0);
        Assert.Equal([(0, 40), (40, 40), (80, 20)], unaligned);
        Assert.NotEqual(unaligned, unalignedBeside);
    }

    [Fact]
    public void NegativeAlignment_IsRefused()
        => Assert.Throws<ArgumentOutOfRangeException>(() => new SchedulerOptions { PrefillChunkAlignment = -1 });

    /// <summary>The (past, tokens) of every chunk of a 100-token prompt submitted while <paramref name="decodes"/> sequences decode, and its tokens.</summary>
    private static async Task<(List<(int Past, int Count)> Cuts, List<int> Tokens)> CutsAsync(int decodes, int alignment)
    {
        var options = new SchedulerOptions { MaxNumBatchedTokens = 40, MaxNumSeqs = 8, PrefillChunkAlignment = alignment };
        using var model = ServedModel.Load(SchedulerHarness.Fixture("llama-gqa"));
        var runner = new RecordingRunner(model.CreateRunner(options.KvBudget));
        await using var scheduler = new ContinuousBatchScheduler(model, runner, options, NullLogger<ContinuousBatchScheduler>.Instance, observer: null, TimeProvider.System);
        for (var d = 0; d < decodes; d++)
        {
            Submit(scheduler, [5 + d, 6, 7], 200);
        }

        scheduler.Step();
        runner.Cuts.Clear();
        var prompt = Enumerable.Range(0, 100).Select(i => (i * 7 % 900) + 3).ToArray();
        var updates = Submit(scheduler, prompt, 3);
        var tokens = new List<int>();
        for (var step = 0; step < 50 && tokens.Count < 3; step++)
        {
            scheduler.Step();
            tokens.AddRange(SchedulerHarness.Drain(updates).Where(u => u.TokenId >= 0).Select(u => u.TokenId));
        }

        Assert.Equal(3, tokens.Count);
        return (runner.Cuts, tokens);
    }

    private static ChannelReader<GenerationUpdate> Submit(ContinuousBatchScheduler scheduler, int[] prompt, int maxTokens)
    {
        var readers = new ChannelReader<GenerationUpdate>[1];
        scheduler.Submit([SchedulerHarness.Request(prompt, maxTokens)], readers, CancellationToken.None);
        return readers[0];
    }

    /// <summary>The real runner, recording the (past, tokens) of every multi-token row it runs.</summary>
    private sealed class RecordingRunner(IModelRunner inner) : IModelRunner
    {
        public List<(int Past, int Count)> Cuts { get; } = [];

        public ModelSpec Spec => inner.Spec;

        public int BlockCount => inner.BlockCount;

        public int BlockSize => inner.BlockSize;

        public void Forward(ForwardBatch batch, Span<float> logits)
        {
            for (var r = 0; r < batch.RowCount; r++)
            {
                if (batch.Tokens(r).Length > 1)
                {
                    Cuts.Add((batch.PastLength(r), batch.Tokens(r).Length));
                }
            }

            inner.Forward(batch, logits);
        }

        public void Dispose() => inner.Dispose();
    }
}
