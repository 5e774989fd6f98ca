// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.InteropServices;
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.GpuTests;

/// <summary>
/// The host KV tier's block copy (ADR 0009) on the paged CUDA runner: blocks copied out of the device pools and into other
/// blocks round-trip byte for byte and serve the same next-token logits as the originals, synchronously from any span
/// and queued on the runner's transfer stream from page-locked memory.
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
    /// the runner's transfer stream, in order, and finished before the next step reads the blocks.
    /// </summary>
    [Theory]
    [InlineData("llama-gqa", "fp16")]
    [InlineData("qwen2", "bf16")]
    public unsafe void PagedRunner_QueuedCopiesThroughPinnedMemory_FinishBeforeTheNextStep(string fixture, string dtype)
    {
        using var setup = Setup.Open(fixture, dtype);
        var transfer = setup.Transfer;
        var blocks = setup.Original.Length;
        var blockBytes = transfer.BlockBytes;
        var host = (byte*)NativeMemory.AlignedAlloc((nuint)(blocks * blockBytes), 64);
        try
        {
            var pin = transfer.PinHost((IntPtr)host, (long)blocks * blockBytes);
            Assert.NotNull(pin);
            for (var b = 0; b < blocks; b++)
            {
                transfer.CopyOut(setup.Original[b], new Span<byte>(host + ((long)b * blockBytes), blockBytes));
                transfer.CopyIn(setup.Copies[b], new Span<byte>(host + ((long)b * blockBytes), blockBytes));
            }

            setup.AssertCopiesServeTheSameLogits();

            // Copies out queued last are finished once the pin is released; the bytes are the block's.
            transfer.CopyOut(setup.Original[0], new Span<byte>(host, blockBytes));
            pin!.Dispose();
            var direct = new byte[blockBytes];
            transfer.CopyOut(setup.Original[0], direct);
            Assert.Equal(direct, new Span<byte>(host, blockBytes).ToArray());
        }
        finally
        {
            NativeMemory.AlignedFree(host);
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

        public void Dispose()
        {
            Runner.Dispose();
            Model.Dispose();
        }
    }
}
