// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Packaging;
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.GpuTests;

/// <summary>
/// The host KV tier's block copy (ADR 0009) on the paged CUDA runner: blocks copied out of the device pools and into other
/// blocks round-trip byte for byte and serve the same next-token logits as the originals.
/// </summary>
public sealed class KvBlockTransferTests
{
    [Theory]
    [InlineData("llama-gqa", "fp16")]
    [InlineData("qwen2", "bf16")]
    public void PagedRunner_BlocksCopiedOutAndIn_GiveTheSameLogits(string fixture, string dtype)
    {
        if (GpuFixtures.CudaUnavailableReason is { } reason)
        {
            Assert.Skip(reason);
        }

        var options = new OnnxSessionOptions { Device = "cuda", CudaGraphs = false };
        using var model = Assert.IsType<PagedDecoderModel>(DecoderModels.Open(ModelPackage.Load(GpuFixtures.BuildPaged(fixture, dtype)), options));
        var prompt = GpuFixtures.References(fixture)[0].Prompt;
        var blockSize = model.ChooseBlockSize(16);
        var blocks = (prompt.Length + 1 + blockSize - 1) / blockSize;
        using var runner = model.CreateRunner(2 * blocks, blockSize);
        var transfer = Assert.IsAssignableFrom<IKvBlockTransfer>(runner);
        Assert.Equal(model.Spec.KvBytesPerToken * blockSize, transfer.BlockBytes);
        var vocab = model.Spec.VocabularySize;

        var original = Enumerable.Range(0, blocks).ToArray();
        var copies = Enumerable.Range(blocks, blocks).ToArray();
        var batch = new ForwardBatch { DistributionsWanted = true };
        batch.AddRow(prompt, 0, original, RowLogits.Last);
        runner.Forward(batch, new float[vocab]);

        var bytes = new byte[transfer.BlockBytes];
        var back = new byte[transfer.BlockBytes];
        for (var b = 0; b < blocks; b++)
        {
            transfer.CopyOut(original[b], bytes);
            transfer.CopyIn(copies[b], bytes);
            transfer.CopyOut(copies[b], back);
            Assert.Equal(bytes, back);
        }

        var expected = new float[vocab];
        var actual = new float[vocab];
        batch.Clear();
        batch.AddRow([prompt[^1]], prompt.Length, original, RowLogits.Last);
        runner.Forward(batch, expected);
        batch.Clear();
        batch.AddRow([prompt[^1]], prompt.Length, copies, RowLogits.Last);
        runner.Forward(batch, actual);
        Assert.Equal(expected, actual);
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
        if (GpuFixtures.CudaUnavailableReason is { } reason)
        {
            Assert.Skip(reason);
        }

        var options = new OnnxSessionOptions { Device = "cuda", CudaGraphs = false };
        using var model = Assert.IsType<PagedDecoderModel>(DecoderModels.Open(ModelPackage.Load(GpuFixtures.BuildPaged(fixture, dtype)), options));
        var prompt = GpuFixtures.References(fixture)[0].Prompt;
        var blockSize = model.ChooseBlockSize(16);
        var blocks = (prompt.Length + 1 + blockSize - 1) / blockSize;
        using var runner = model.CreateRunner(2 * blocks, blockSize);
        var transfer = Assert.IsAssignableFrom<IKvBlockTransfer>(runner);
        var vocab = model.Spec.VocabularySize;
        var original = Enumerable.Range(0, blocks).ToArray();
        var copies = Enumerable.Range(blocks, blocks).ToArray();
        var batch = new ForwardBatch { DistributionsWanted = true };
        batch.AddRow(prompt, 0, original, RowLogits.Last);
        runner.Forward(batch, new float[vocab]);

        var blockBytes = transfer.BlockBytes;
        var host = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(blocks * blockBytes), 64);
        try
        {
            var pin = transfer.PinHost((IntPtr)host, (long)blocks * blockBytes);
            Assert.NotNull(pin);
            for (var b = 0; b < blocks; b++)
            {
                transfer.CopyOut(original[b], new Span<byte>(host + ((long)b * blockBytes), blockBytes));
                transfer.CopyIn(copies[b], new Span<byte>(host + ((long)b * blockBytes), blockBytes));
            }

            var expected = new float[vocab];
            var actual = new float[vocab];
            batch.Clear();
            batch.AddRow([prompt[^1]], prompt.Length, original, RowLogits.Last);
            runner.Forward(batch, expected);
            batch.Clear();
            batch.AddRow([prompt[^1]], prompt.Length, copies, RowLogits.Last);
            runner.Forward(batch, actual);
            Assert.Equal(expected, actual);

            // Copies out queued last are finished once the pin is released; the bytes are the block's.
            transfer.CopyOut(original[0], new Span<byte>(host, blockBytes));
            pin!.Dispose();
            var direct = new byte[blockBytes];
            transfer.CopyOut(original[0], direct);
            Assert.Equal(direct, new Span<byte>(host, blockBytes).ToArray());
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(host);
        }
    }
}
