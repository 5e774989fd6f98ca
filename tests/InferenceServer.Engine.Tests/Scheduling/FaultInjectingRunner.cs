// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Onnx.Runtime;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>The real runner, except that the forward passes the test chooses throw.</summary>
internal sealed class FaultInjectingRunner(IModelRunner inner) : IModelRunner
{
    /// <summary>Forward passes that throw from now on (each failing pass takes one); int.MaxValue: every one.</summary>
    public int FailNext { get; set; }

    public int Forwards { get; private set; }

    public ModelSpec Spec => inner.Spec;

    public int BlockCount => inner.BlockCount;

    public int BlockSize => inner.BlockSize;

    public void Forward(ForwardBatch batch, Span<float> logits)
    {
        Forwards++;
        if (FailNext > 0)
        {
            if (FailNext != int.MaxValue)
            {
                FailNext--;
            }

            throw new InvalidOperationException("injected fault: device lost");
        }

        inner.Forward(batch, logits);
    }

    public void Dispose() => inner.Dispose();
}
