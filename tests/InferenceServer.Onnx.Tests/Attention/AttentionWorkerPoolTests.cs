using InferenceServer.Onnx.Attention;

namespace InferenceServer.Onnx.Tests.Attention;

/// <summary><see cref="AttentionWorkerPool"/>: every fork runs the body once on every thread, and failures come back.</summary>
public sealed class AttentionWorkerPoolTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(3);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    public async Task Run_ManyForks_RunEveryThreadOncePerFork(int threads)
    {
        const int Forks = 3000;
        var counts = new int[threads];
        using var pool = new AttentionWorkerPool(threads, index => counts[index]++);
        // Bounded: a lost wake-up fails the test instead of hanging the run.
        await Task.Run(() =>
        {
            for (var i = 0; i < Forks; i++)
            {
                pool.Run();
                if (i % 5 == 0)
                {
                    // Let idle workers fall asleep often: a worker that finishes a fork and sleeps again before a
                    // slower one has woken must not take that one's wake-up (a shared semaphore did, and hung).
                    Thread.Sleep(1);
                }
            }
        }).WaitAsync(Bound);

        Assert.All(counts, count => Assert.Equal(Forks, count));
    }

    [Fact]
    public async Task Run_WorkerThrows_RethrowsOnCaller_AndStaysUsable()
    {
        var fail = true;
        using var pool = new AttentionWorkerPool(3, index =>
        {
            if (fail && index == 2)
            {
                throw new InvalidOperationException("worker failed");
            }
        });
        Assert.Throws<InvalidOperationException>(pool.Run);
        fail = false;
        await Task.Run(pool.Run).WaitAsync(Bound);
    }

    [Fact]
    public void Dispose_Twice_ThenRun_Throws()
    {
        var pool = new AttentionWorkerPool(3, _ => { });
        pool.Run();
        pool.Dispose();
        pool.Dispose();
        Assert.Throws<ObjectDisposedException>(pool.Run);
    }
}
