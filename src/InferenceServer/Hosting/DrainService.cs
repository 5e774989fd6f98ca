// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Scheduling;
using InferenceServer.Serving;

namespace InferenceServer.Hosting;

/// <summary>
/// Graceful shutdown behind a load balancer. On SIGTERM (the host's stopping signal) readiness goes false at once and
/// new API requests get 503 while Kestrel still listens, so a balancer retries them elsewhere; requests in flight get
/// <c>--shutdown-timeout</c> to finish; whatever is left then is cancelled with the error "The server is shutting
/// down."; then the host stops the web server and the engine and the process exits 0. The host runs every
/// <see cref="IHostedLifecycleService.StoppingAsync"/> before any service's <c>StopAsync</c>, so Kestrel is still
/// serving while this waits.
/// </summary>
internal sealed partial class DrainService(
    ServingState state,
    ContinuousBatchScheduler scheduler,
    IHostApplicationLifetime lifetime,
    TimeProvider time,
    ServerOptions options,
    ILogger<DrainService> logger) : IHostedLifecycleService
{
    /// <summary>How long cancelled requests get to write their error before the web server stops.</summary>
    private static readonly TimeSpan CancelledGrace = TimeSpan.FromSeconds(5);

    /// <inheritdoc />
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        // The signal handler fires ApplicationStopping first: readiness must not wait for the host to reach StoppingAsync.
        lifetime.ApplicationStopping.Register(static s => ((ServingState)s!).BeginDrain(), state);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        state.BeginDrain();
        var inFlight = state.InFlight;
        Log.DrainStarted(logger, inFlight, options.ShutdownTimeout.TotalSeconds);
        var started = time.GetTimestamp();
        try
        {
            await state.WhenIdleAsync(cancellationToken).WaitAsync(options.ShutdownTimeout, time, cancellationToken).ConfigureAwait(false);
            Log.DrainCompleted(logger, inFlight, time.GetElapsedTime(started).TotalMilliseconds);
            return;
        }
        catch (TimeoutException)
        {
            Log.DrainTimedOut(logger, state.InFlight, options.ShutdownTimeout.TotalSeconds);
        }

        // Cancel what is left: every sequence ends with "The server is shutting down." and its handler answers with it.
        await scheduler.DisposeAsync().ConfigureAwait(false);
        try
        {
            await state.WhenIdleAsync(cancellationToken).WaitAsync(CancelledGrace, time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The web server's own shutdown closes whatever connection is still open.
        }
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(EventId = 2101, EventName = "DrainStarted", Level = LogLevel.Information, Message = "Draining: not ready, new requests get 503; waiting up to {TimeoutSeconds} s for {InFlight} in-flight requests.")]
        public static partial void DrainStarted(ILogger logger, int inFlight, double timeoutSeconds);

        [LoggerMessage(EventId = 2102, EventName = "DrainCompleted", Level = LogLevel.Information, Message = "Drained: {InFlight} in-flight requests finished in {ElapsedMs} ms.")]
        public static partial void DrainCompleted(ILogger logger, int inFlight, double elapsedMs);

        [LoggerMessage(EventId = 2103, EventName = "DrainTimedOut", Level = LogLevel.Warning, Message = "Shutdown timeout of {TimeoutSeconds} s reached; cancelling {InFlight} requests still in flight.")]
        public static partial void DrainTimedOut(ILogger logger, int inFlight, double timeoutSeconds);
    }
}
