using InferenceServer.OpenAi;
using InferenceServer.Serving;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Tests.OpenAi;

/// <summary>The request's log line gives the status the client gets: a handler that threw is the exception handler's 500, not 200.</summary>
public sealed class RequestLogStatusTests
{
    [Theory]
    [InlineData(true, 200)]
    [InlineData(false, 500)]
    public void LogFinished_LogsTheStatusTheClientGets(bool completed, int expected)
    {
        var context = new DefaultHttpContext();
        if (!completed)
        {
            Assert.False(GenerationRunner.MarkFailed(context));
        }

        var logger = new StatusLogger();
        GenerationRunner.LogFinished(context, logger, "cmpl-1", "m", new UsageCounter(), TimeSpan.FromMilliseconds(5));
        Assert.Equal(expected, logger.StatusCode);
    }

    [Fact]
    public void LogFinished_ForAClientThatLeft_Is499()
    {
        var context = new DefaultHttpContext();
        using var aborted = new CancellationTokenSource();
        aborted.Cancel();
        context.RequestAborted = aborted.Token;
        var logger = new StatusLogger();
        GenerationRunner.MarkFailed(context);
        GenerationRunner.LogFinished(context, logger, "cmpl-1", "m", new UsageCounter(), TimeSpan.FromMilliseconds(5));
        Assert.Equal(499, logger.StatusCode);
    }

    /// <summary>Keeps the <c>StatusCode</c> of the last structured log entry.</summary>
    private sealed class StatusLogger : ILogger
    {
        public int? StatusCode { get; private set; }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (state is IReadOnlyList<KeyValuePair<string, object?>> values)
            {
                StatusCode = values.Where(v => v.Key == "StatusCode").Select(v => (int?)v.Value).FirstOrDefault();
            }
        }
    }
}
