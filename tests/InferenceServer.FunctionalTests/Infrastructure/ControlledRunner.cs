using InferenceServer.Onnx.Runtime;

namespace InferenceServer.FunctionalTests.Infrastructure;

/// <summary>
/// The real model runner with two test controls: a gate that holds forward passes (so that requests pile up in the queue
/// deterministically) and injected faults (forward passes that throw).
/// </summary>
public sealed class ControlledRunner(IModelRunner inner) : IModelRunner
{
    private readonly ManualResetEventSlim _open = new(true);
    private readonly SemaphoreSlim _entered = new(0);
    private int _failNext;

    /// <summary>Forward passes that throw from now on; int.MaxValue: every one.</summary>
    public int FailNext
    {
        get => Volatile.Read(ref _failNext);
        set => Volatile.Write(ref _failNext, value);
    }

    public ModelSpec Spec => inner.Spec;

    public int BlockCount => inner.BlockCount;

    public int BlockSize => inner.BlockSize;

    /// <summary>Makes forward passes wait at the gate until <see cref="Open"/>.</summary>
    public void Close()
    {
        _open.Reset();
        while (_entered.Wait(0))
        {
        }
    }

    public void Open() => _open.Set();

    /// <summary>Completes when a forward pass has reached the gate (every pass signals once).</summary>
    public Task WaitEnteredAsync() => _entered.WaitAsync(TimeSpan.FromSeconds(60)).ContinueWith(static t => Assert.True(t.Result, "no forward pass reached the gate"), TaskScheduler.Default);

    public void Forward(ForwardBatch batch, Span<float> logits)
    {
        _entered.Release();
        if (!_open.Wait(TimeSpan.FromSeconds(60)))
        {
            throw new TimeoutException("the test never opened the runner's gate");
        }

        var fail = FailNext;
        if (fail > 0)
        {
            if (fail != int.MaxValue)
            {
                FailNext = fail - 1;
            }

            throw new InvalidOperationException("injected fault: device lost");
        }

        inner.Forward(batch, logits);
    }

    public void Dispose()
    {
        _open.Set();
        inner.Dispose();
        _open.Dispose();
        _entered.Dispose();
    }
}
