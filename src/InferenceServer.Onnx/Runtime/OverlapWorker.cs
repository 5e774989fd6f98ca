// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.ExceptionServices;

namespace InferenceServer.Onnx.Runtime;

/// <summary>
/// The thread that attends on the host while the step's thread runs the dense segments of the other micro-batch (ADR
/// 0010). Work items are (lane, attention call) pairs run in the order they were started, one at a time (the CPU
/// attention kernel's own workers parallelize each); each lane has at most one item in flight, which
/// <see cref="Wait"/> joins, rethrowing what it threw. Nothing is allocated per item.
/// </summary>
internal sealed class OverlapWorker : IDisposable
{
    private const int Lanes = 2;

    /// <summary>SpinWait rounds the idle thread waits for the next item before it blocks (the next layer's call comes within tens of microseconds).</summary>
    private const int IdleSpins = 64;

    private readonly Action<int, int> _work;
    private readonly Thread _thread;
    private readonly object _gate = new();
    private readonly int[] _queueLane = new int[Lanes];
    private readonly int[] _queueCall = new int[Lanes];
    private readonly ManualResetEventSlim[] _done = [new(true), new(true)];
    private readonly bool[] _pending = new bool[Lanes];
    private readonly ExceptionDispatchInfo?[] _errors = new ExceptionDispatchInfo?[Lanes];
    private int _head;
    private int _count;
    /// <summary>Stopwatch ticks the thread spent in work items since the last <see cref="TakeBusyTicks"/>.</summary>
    private long _busyTicks;
    private bool _stopping;

    /// <summary>Starts the thread; <paramref name="work"/> gets (lane, call) on it.</summary>
    public OverlapWorker(Action<int, int> work)
    {
        _work = work;
        foreach (var done in _done)
        {
            // A ManualResetEventSlim makes its lock object the first time a wait blocks: do it here, not in a step.
            done.Reset();
            done.Wait(1);
            done.Set();
        }

        _thread = new Thread(Loop, maxStackSize: 256 * 1024) { IsBackground = true, Name = "attention-overlap" };
        _thread.Start();
    }

    /// <summary>Queues attention call <paramref name="call"/> of lane <paramref name="lane"/> (0 or 1), which must have nothing in flight.</summary>
    public void Start(int lane, int call)
    {
        if (_pending[lane])
        {
            throw new InvalidOperationException($"Lane {lane} already has an attention call in flight.");
        }

        _pending[lane] = true;
        _done[lane].Reset();
        lock (_gate)
        {
            var tail = (_head + _count) % Lanes;
            _queueLane[tail] = lane;
            _queueCall[tail] = call;
            _count++;
            Monitor.Pulse(_gate);
        }
    }

    /// <summary>Waits for lane <paramref name="lane"/>'s item, if any, and rethrows its exception.</summary>
    public void Wait(int lane)
    {
        if (!_pending[lane])
        {
            return;
        }

        _done[lane].Wait();
        _pending[lane] = false;
        if (_errors[lane] is { } error)
        {
            _errors[lane] = null;
            error.Throw();
        }
    }

    /// <summary>Waits for every lane's item, ignoring what they threw (a failed step's cleanup).</summary>
    public void Drain()
    {
        for (var lane = 0; lane < Lanes; lane++)
        {
            if (_pending[lane])
            {
                _done[lane].Wait();
                _pending[lane] = false;
                _errors[lane] = null;
            }
        }
    }

    /// <summary>Returns and clears the thread's busy time (Stopwatch ticks) since the last call; call with no item in flight.</summary>
    public long TakeBusyTicks() => Interlocked.Exchange(ref _busyTicks, 0);

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.Pulse(_gate);
        }

        _thread.Join();
        foreach (var done in _done)
        {
            done.Dispose();
        }
    }

    private void Loop()
    {
        while (true)
        {
            int lane;
            int call;
            var spinner = default(SpinWait);
            for (var i = 0; i < IdleSpins && Volatile.Read(ref _count) == 0 && !Volatile.Read(ref _stopping); i++)
            {
                spinner.SpinOnce(sleep1Threshold: -1);
            }

            lock (_gate)
            {
                while (_count == 0 && !_stopping)
                {
                    Monitor.Wait(_gate);
                }

                if (_count == 0)
                {
                    return;
                }

                lane = _queueLane[_head];
                call = _queueCall[_head];
                _head = (_head + 1) % Lanes;
                _count--;
            }

            var start = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                _work(lane, call);
            }
            catch (Exception ex)
            {
                _errors[lane] = ExceptionDispatchInfo.Capture(ex);
            }
            finally
            {
                Interlocked.Add(ref _busyTicks, System.Diagnostics.Stopwatch.GetTimestamp() - start);
                _done[lane].Set();
            }
        }
    }
}
