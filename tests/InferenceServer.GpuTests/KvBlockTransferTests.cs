// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.GpuTests;

/// <summary>
/// The host KV tier's block copy (ADR 0009) on the paged CUDA runner: blocks copied out of the device pools and into other
/// blocks round-trip byte for byte and serve the same next-token logits as the originals, synchronously from any span
/// (one copy per pool) and queued on the runner's transfer stream from page-locked memory (one pitched copy per block
/// over the pools' arena, <c>KvPoolArena</c>).
/// </summary>
public sealed class KvBlockTransferTests
{
    [Theory]
    [InlineData("llama-gqa", "fp16")]
    [InlineData("qwen2", "bf16")]
    public void PagedRunner_BlocksCopiedOutAndIn_GiveTheSameLogits(string fixture, string dtype)
    {
        using var setup = Setup.Open(fixture, dtype);
        var transfer = setup.Transfer;
        Assert.Equal(setup.Model.Spec.KvBytesPerToken * setup.Runner.BlockSize, transfer.BlockBytes);
        var bytes = new byte[transfer.BlockBytes];
        var back = new byte[transfer.BlockBytes];
        for (var b = 0; b < setup.Original.Length; b++)
        {
            transfer.CopyOut(setup.Original[b], bytes);
            transfer.CopyIn(setup.Copies[b], bytes);
            transfer.CopyOut(setup.Copies[b], back);
            Assert.Equal(bytes, back);
        }

        setup.AssertCopiesServeTheSameLogits();
    }

    /// <summary>
    /// The host tier's path: copies to and from page-locked memory (<see cref="IKvBlockTransfer.PinHost"/>) are queued on
    /// the runner's transfer stream, in order; the copies in pass a fence (<see cref="IKvBlockTransfer.CopyInFence"/>),
    /// which the scheduler waits out before a step reads their blocks, as this test does.
    /// </summary>
    [Theory]
    [InlineData("llama-gqa", "fp16", 1)]
    [InlineData("qwen2", "bf16", 1)]
    [InlineData("deepseek-v3-mla", "fp16", 2)]
    public void PagedRunner_QueuedCopiesThroughPinnedMemory_FinishBeforeTheNextStep(string fixture, string dtype, int callsPerBlock)
    {
        using var setup = Setup.Open(fixture, dtype);
        var transfer = setup.Transfer;

        // A block of all pools of one width is one pitched copy (KvPoolArena, 2026-12-08): one for layers whose keys and
        // values are alike, two for the gather-form MLA layers (latent pools, rope-key pools).
        Assert.Equal(callsPerBlock, Assert.IsType<PagedDeviceRunner>(setup.Runner).QueuedCallsPerBlock);
        using var host = new PinnedSlots(transfer, setup.Original.Length);
        for (var b = 0; b < setup.Original.Length; b++)
        {
            transfer.CopyOut(setup.Original[b], host.Slot(b));
            transfer.CopyIn(setup.Copies[b], host.Slot(b));
        }

        var fence = transfer.CopyInFence();
        transfer.WaitCopyIn(fence);
        Assert.True(transfer.CopyInDone(fence));
        Assert.Equal(0, transfer.CopyInFence());
        setup.AssertCopiesServeTheSameLogits();

        // Copies out queued last are finished once the pin is released; the bytes are the block's.
        transfer.CopyOut(setup.Original[0], host.Slot(0));
        host.Unpin();
        Assert.Equal(setup.Read([setup.Original[0]]), host.Slot(0).ToArray());
    }

    /// <summary>
    /// The orderings the asynchronous copy-in relies on (ADR 0009): a step waits for the copies out queued before it (it may
    /// overwrite their blocks: here it prefills another prompt over them at once), but not for the copies in, which a
    /// fence covers (here a step over other blocks runs while they may still be queued, then the fence is waited for).
    /// </summary>
    [Theory]
    [InlineData("llama-gqa", "fp16")]
    [InlineData("qwen2", "bf16")]
    public void PagedRunner_StepWaitsForQueuedCopiesOut_NotForCopiesIn(string fixture, string dtype)
    {
        using var setup = Setup.Open(fixture, dtype);
        var transfer = setup.Transfer;
        var before = setup.Read(setup.Original);
        using var host = new PinnedSlots(transfer, setup.Original.Length);

        // Copies in of the original bytes into the spare blocks, fenced; a step over the originals runs meanwhile.
        new Span<byte>(before).CopyTo(host.Slots(0, setup.Original.Length));
        host.CopyIn(setup.Copies, firstSlot: 0);
        var fence = transfer.CopyInFence();
        setup.StepOverOriginals();
        transfer.WaitCopyIn(fence);
        Assert.True(transfer.CopyInDone(fence));
        setup.AssertCopiesServeTheSameLogits();

        // Copies out, then at once a step that writes other tokens over those blocks: the host has the bytes from before
        // (read synchronously first: the decodes above wrote one more position).
        var expected = setup.Read(setup.Original);
        host.CopyOut(setup.Original, firstSlot: 0);
        setup.OverwriteOriginals();
        Assert.Equal(expected, host.Slots(0, setup.Original.Length).ToArray());
        Assert.NotEqual(expected.AsSpan(0, transfer.BlockBytes).ToArray(), setup.Read([setup.Original[0]]));
    }

    /// <summary>
    /// Queued copies that share host bytes or a block keep the order asked (ADR 0009): a copy out into host bytes that a
    /// fenced copy in still reads waits for it (the tier frees a swapped-in slot at once and a demotion may take it), and a
    /// copy in into a block that a copy out still reads waits for that copy out (a demoted block handed to a promotion in
    /// the same pause between steps). A missing order shows as bytes from the wrong side where the two copies race.
    /// Written 2026-12-08; its first GPU run failed on the test's own assertion that a second fence is newer (a fence
    /// already passed is 0), fixed since.
    /// </summary>
    [Theory]
    [InlineData("llama-gqa", "fp16")]
    [InlineData("qwen2", "bf16")]
    public void PagedRunner_CopiesBothWays_WaitForEachOtherWhereTheyShareBytes(string fixture, string dtype)
    {
        using var setup = Setup.Open(fixture, dtype);
        var transfer = setup.Transfer;
        var blocks = setup.Original.Length;
        var before = setup.Read(setup.Original);
        using var host = new PinnedSlots(transfer, 2 * blocks);
        new Span<byte>(before).CopyTo(host.Slots(0, blocks));
        setup.OverwriteOriginals();
        var overwritten = setup.Read(setup.Original);
        Assert.NotEqual(before, overwritten);

        // Copies in from the slots, fenced, then at once copies out of the (overwritten) originals into the same slots.
        host.CopyIn(setup.Copies, firstSlot: 0);
        var fence = transfer.CopyInFence();
        host.CopyOut(setup.Original, firstSlot: 0);

        // Then copies in of the first bytes back into the originals, which those copies out still read.
        new Span<byte>(before).CopyTo(host.Slots(blocks, blocks));
        host.CopyIn(setup.Original, firstSlot: blocks);
        transfer.WaitCopyIn(fence);
        transfer.WaitCopyIn(transfer.CopyInFence());
        host.Unpin();

        Assert.Equal(overwritten, host.Slots(0, blocks).ToArray());
        Assert.Equal(before, setup.Read(setup.Copies));
        Assert.Equal(before, setup.Read(setup.Original));
    }

    /// <summary>
    /// Page-locked host slots of one block each, given to the runner (<see cref="IKvBlockTransfer.PinHost"/>) as the host
    /// tier's arena is; disposing releases the pin (which waits for the queued copies) before the memory is freed.
    /// </summary>
    private sealed unsafe class PinnedSlots : IDisposable
    {
        private readonly IKvBlockTransfer _transfer;
        private readonly byte* _host;
        private readonly int _blockBytes;
        private IDisposable? _pin;

        public PinnedSlots(IKvBlockTransfer transfer, int slots)
        {
            _transfer = transfer;
            _blockBytes = transfer.BlockBytes;
            _host = (byte*)NativeMemory.AlignedAlloc((nuint)((long)slots * _blockBytes), 64);
            _pin = transfer.PinHost((IntPtr)_host, (long)slots * _blockBytes);
            if (_pin is null)
            {
                NativeMemory.AlignedFree(_host);
                Assert.Fail("the runner did not page-lock the slots");
            }
        }

        public Span<byte> Slot(int slot) => Slots(slot, 1);

        public Span<byte> Slots(int first, int count) => new(_host + ((long)first * _blockBytes), count * _blockBytes);

        /// <summary>Queues a copy of slot <paramref name="firstSlot"/> + b into <paramref name="blocks"/>[b], for each b.</summary>
        public void CopyIn(int[] blocks, int firstSlot)
        {
            for (var b = 0; b < blocks.Length; b++)
            {
                _transfer.CopyIn(blocks[b], Slot(firstSlot + b));
            }
        }

        /// <summary>Queues a copy of <paramref name="blocks"/>[b] into slot <paramref name="firstSlot"/> + b, for each b.</summary>
        public void CopyOut(int[] blocks, int firstSlot)
        {
            for (var b = 0; b < blocks.Length; b++)
            {
                _transfer.CopyOut(blocks[b], Slot(firstSlot + b));
            }
        }

        /// <summary>Releases the pin: the queued copies have finished once it returns; later copies are synchronous.</summary>
        public void Unpin()
        {
            _pin?.Dispose();
            _pin = null;
        }

        public void Dispose()
        {
            Unpin();
            NativeMemory.AlignedFree(_host);
        }
    }

    /// <summary>A paged fixture on the GPU whose first reference prompt filled blocks <see cref="Original"/>; <see cref="Copies"/> are as many free blocks.</summary>
    private sealed class Setup : IDisposable
    {
        private readonly int[] _prompt;

        private Setup(PagedDecoderModel model, IModelRunner runner, int[] prompt, int blocks)
        {
            Model = model;
            Runner = runner;
            _prompt = prompt;
            Original = [.. Enumerable.Range(0, blocks)];
            Copies = [.. Enumerable.Range(blocks, blocks)];
        }

        public PagedDecoderModel Model { get; }

        public IModelRunner Runner { get; }

        public IKvBlockTransfer Transfer => Assert.IsAssignableFrom<IKvBlockTransfer>(Runner);

        public int[] Original { get; }

        public int[] Copies { get; }

        public static Setup Open(string fixture, string dtype)
        {
            if (GpuFixtures.CudaUnavailableReason is { } reason)
            {
                Assert.Skip(reason);
            }

            var options = new OnnxSessionOptions { Device = "cuda", CudaGraphs = false };
            var model = Assert.IsType<PagedDecoderModel>(DecoderModels.Open(ModelPackage.Load(GpuFixtures.BuildPaged(fixture, dtype)), options));
            var prompt = GpuFixtures.References(fixture)[0].Prompt;
            var blockSize = model.ChooseBlockSize(16);
            var blocks = (prompt.Length + 1 + blockSize - 1) / blockSize;
            var setup = new Setup(model, model.CreateRunner(2 * blocks, blockSize), prompt, blocks);
            var batch = new ForwardBatch { DistributionsWanted = true };
            batch.AddRow(prompt, 0, setup.Original, RowLogits.Last);
            setup.Runner.Forward(batch, new float[model.Spec.VocabularySize]);
            return setup;
        }

        /// <summary>The bytes of <paramref name="blocks"/>, one after another, copied synchronously (from pageable memory).</summary>
        public byte[] Read(int[] blocks)
        {
            var blockBytes = Transfer.BlockBytes;
            var bytes = new byte[blocks.Length * blockBytes];
            for (var b = 0; b < blocks.Length; b++)
            {
                Transfer.CopyOut(blocks[b], bytes.AsSpan(b * blockBytes, blockBytes));
            }

            return bytes;
        }

        /// <summary>The next token's logits read through the copied blocks equal those read through the originals.</summary>
        public void AssertCopiesServeTheSameLogits()
        {
            var vocab = Model.Spec.VocabularySize;
            var expected = new float[vocab];
            var actual = new float[vocab];
            var batch = new ForwardBatch { DistributionsWanted = true };
            batch.AddRow([_prompt[^1]], _prompt.Length, Original, RowLogits.Last);
            Runner.Forward(batch, expected);
            batch.Clear();
            batch.AddRow([_prompt[^1]], _prompt.Length, Copies, RowLogits.Last);
            Runner.Forward(batch, actual);
            Assert.Equal(expected, actual);
        }

        /// <summary>A decode step over <see cref="Original"/> that writes nothing the tests read back (its token lands past the prompt).</summary>
        public void StepOverOriginals()
        {
            var batch = new ForwardBatch { DistributionsWanted = true };
            batch.AddRow([_prompt[^1]], _prompt.Length, Original, RowLogits.Last);
            Runner.Forward(batch, new float[Model.Spec.VocabularySize]);
        }

        /// <summary>A prefill of other tokens over <see cref="Original"/> from position 0: every block's bytes change.</summary>
        public void OverwriteOriginals()
        {
            var batch = new ForwardBatch { DistributionsWanted = true };
            batch.AddRow([.. _prompt.Select(t => (t + 1) % Model.Spec.VocabularySize)], 0, Original, RowLogits.Last);
            Runner.Forward(batch, new float[Model.Spec.VocabularySize]);
        }

        public void Dispose()
        {
            Runner.Dispose();
            Model.Dispose();
        }
    }
}
