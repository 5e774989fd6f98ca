// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Scheduling;
using InferenceServer.Onnx.Attention;
using InferenceServer.Onnx.Runtime;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Engine.Tests.Scheduling;

/// <summary>
/// A runner that stops capturing its decode steps as CUDA graphs (ADR 0011: a capture failed; it runs on uncaptured)
/// is reported once, as a warning with the runner's reason, and the requests finish with their reference tokens.
/// </summary>
public sealed class CaptureFailureLogTests
{
    [Fact]
    public async Task CaptureFailure_IsLoggedOnce_AndRequestsFinishWithTheirTokens()
    {
        var log = new ListLogger();
        CapturingRunner? runner = null;
        await using var harness = SchedulerHarness.Create("llama-gqa", Options, inner => runner = new CapturingRunner(inner) { FailAfter = 3 }, log);
        var cases = SchedulerHarness.Cases("llama-gqa");
        var updates = cases.Select(c => harness.Submit(c.Prompt, c.Greedy.Length)).ToArray();
        harness.DriveToEnd();
        for (var i = 0; i < cases.Count; i++)
        {
            Assert.Equal(cases[i].Greedy, SchedulerHarness.Drain(updates[i]).Where(u => u.TokenId >= 0).Select(u => u.TokenId).ToArray());
        }

        Assert.True(runner!.Forwards > 4, "the run ended before the capture failed");
        var warning = Assert.Single(log.Entries, e => e.Level == LogLevel.Warning);
        Assert.Equal(1015, warning.EventId);
        Assert.Contains("capturing a step of 8 rows failed: test", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoCaptureFailure_NothingLogged()
    {
        var log = new ListLogger();
        await using var harness = SchedulerHarness.Create("llama-gqa", Options, inner => new CapturingRunner(inner) { FailAfter = int.MaxValue }, log);
        var cases = SchedulerHarness.Cases("llama-gqa");
        _ = harness.Submit(cases[0].Prompt, cases[0].Greedy.Length);
        harness.DriveToEnd();
        Assert.DoesNotContain(log.Entries, e => e.Level >= LogLevel.Warning);
    }

    private static SchedulerOptions Options => new() { BlockSize = 16 };

    /// <summary>The real runner, as an offloading runner whose capture fails after <see cref="FailAfter"/> forward passes.</summary>
    private sealed class CapturingRunner(IModelRunner inner) : IModelRunner, IOffloadingRunner
    {
        public int FailAfter { get; init; }

        public int Forwards { get; private set; }

        public ModelSpec Spec => inner.Spec;

        public int BlockCount => inner.BlockCount;

        public int BlockSize => inner.BlockSize;

        public IAttentionObserver? Observer { get; set; }

        public ReadOnlySpan<long> LastStepAttentionTicks => [];

        public string? CaptureFailure => Forwards > FailAfter ? "capturing a step of 8 rows failed: test" : null;

        public void Forward(ForwardBatch batch, Span<float> logits)
        {
            Forwards++;
            inner.Forward(batch, logits);
        }

        public void Dispose() => inner.Dispose();
    }

    /// <summary>Log entries kept in order.</summary>
    private sealed class ListLogger : ILogger
    {
        public List<(LogLevel Level, int EventId, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add((logLevel, eventId.Id, formatter(state, exception)));
    }
}
