// Licensed under the MIT License. See LICENSE in the repository root.
using System.Runtime.ExceptionServices;

namespace InferenceServer.Onnx.Attention;

/// <summary>
/// Persistent worker threads with a low-overhead fork/join: <see cref="Run"/> runs one body on the caller (worker 0) and
/// every worker, and returns when all are done. Idle workers spin briefly for the next fork (attention calls come layer
/// after layer), then block on their own semaphore. Nothing is allocated per fork.
/// </summary>
/// <remarks>
/// Each worker has its own semaphore and "asleep" flag, so a wake-up meant for one worker can never be taken by another
/// (a shared semaphore loses wake-ups: a fast worker that finished the fork and went back to sleep could take the permit
/// released for a slow one that had not woken yet). The flag and the generation are a Dekker pair: a worker sets its
/// flag, then re-reads the generation; a fork increments the generation, then takes every set flag and releases that
/// worker's semaphore. Either the worker sees the new generation or the fork sees the flag. A permit left over from a
/// race only wakes its own worker once more, which then finds no new fork and sleeps again.
/// </remarks>
internal sealed class AttentionWorkerPool : IDisposable
{
    /// <summary>SpinWait rounds an idle worker waits for the next fork before it blocks (tens of microseconds).</summary>
    private const int IdleSpins = 64;

    private readonly Action<int> _body;
    private readonly Thread[] _threads;
    /// <summary>Ints between two workers' flags in <see cref="_asleep"/> (one cache line).</summary>
    private const int FlagStride = 16;

    private readonly SemaphoreSlim[] _wakes;
    private readonly int[] _asleep;
    private readonly long[] _allocated;
    private int _generation;
    private int _remaining;
    private volatile bool _stopping;
    private Exception? _failure;

    /// <summary>Starts <paramref name="threads"/> - 1 workers; <paramref name="body"/> gets the worker index (0 = the caller).</summary>
    public AttentionWorkerPool(int threads, Action<int> body)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threads);
        _body = body;
        Threads = threads;
        _allocated = new long[threads];
        _threads = new Thread[threads - 1];
        _wakes = new SemaphoreSlim[threads];
        _asleep = new int[threads * FlagStride];
        for (var i = 0; i < _wakes.Length; i++)
        {
            _wakes[i] = new SemaphoreSlim(0);
        }

        for (var i = 0; i < _threads.Length; i++)
        {
            _threads[i] = new Thread(WorkerLoop, maxStackSize: 256 * 1024) { IsBackground = true, Name = $"attention-cpu-{i + 1}" };
            _threads[i].Start(i + 1);
        }
    }

    /// <summary>Threads that run each fork, the caller's included.</summary>
    public int Threads { get; }

    /// <summary>Bytes the worker threads (not the caller) allocated while running bodies: 0 in steady state.</summary>
    public long WorkerAllocatedBytes
    {
        get
        {
            long sum = 0;
            for (var i = 1; i < _allocated.Length; i++)
            {
                sum += Volatile.Read(ref _allocated[i]);
            }

            return sum;
        }
    }

    /// <summary>Runs the body on every thread and waits for all of them; rethrows the first failure.</summary>
    public void Run()
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        _failure = null;
        if (_threads.Length > 0)
        {
            Volatile.Write(ref _remaining, _threads.Length);
            Interlocked.Increment(ref _generation);
            WakeSleepers();
        }

        try
        {
            _body(0);
        }
        catch (Exception exception)
        {
            Interlocked.CompareExchange(ref _failure, exception, null);
        }

        var spinner = default(SpinWait);
        while (Volatile.Read(ref _remaining) != 0)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
        }

        if (_failure is { } failure)
        {
            ExceptionDispatchInfo.Throw(failure);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_stopping)
        {
            return;
        }

        _stopping = true;
        Interlocked.Increment(ref _generation);
        for (var i = 1; i < _wakes.Length; i++)
        {
            _wakes[i].Release();
        }

        foreach (var thread in _threads)
        {
            thread.Join();
        }

        foreach (var wake in _wakes)
        {
            wake.Dispose();
        }
    }

    private void WakeSleepers()
    {
        for (var i = 1; i < _wakes.Length; i++)
        {
            if (Interlocked.Exchange(ref _asleep[i * FlagStride], 0) != 0)
            {
                _wakes[i].Release();
            }
        }
    }

    private void WorkerLoop(object? state)
    {
        var index = (int)state!;
        var seen = 0;
        while (true)
        {
            var spinner = default(SpinWait);
            var generation = Volatile.Read(ref _generation);
            for (var spin = 0; generation == seen && spin < IdleSpins; spin++)
            {
                spinner.SpinOnce(sleep1Threshold: -1);
                generation = Volatile.Read(ref _generation);
            }

            if (generation == seen)
            {
                // Raise the flag, then look again: a fork that came in between may not have seen the flag, so run it
                // now (if it did see it, the permit it released only wakes this thread once more, later).
                Interlocked.Exchange(ref _asleep[index * FlagStride], 1);
                generation = Volatile.Read(ref _generation);
                if (generation == seen)
                {
                    _wakes[index].Wait();
                    continue;
                }

                Interlocked.Exchange(ref _asleep[index * FlagStride], 0);
            }

            seen = generation;
            if (_stopping)
            {
                return;
            }

            var before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                _body(index);
            }
            catch (Exception exception)
            {
                Interlocked.CompareExchange(ref _failure, exception, null);
            }

            _allocated[index] += GC.GetAllocatedBytesForCurrentThread() - before;
            Interlocked.Decrement(ref _remaining);
        }
    }
}
