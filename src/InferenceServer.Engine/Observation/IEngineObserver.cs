// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Requests;

namespace InferenceServer.Engine.Observation;

/// <summary>
/// What the scheduler loop reports as it runs, for whoever measures it (the metrics in <c>Diagnostics</c> implement it):
/// the gauges to read, each step's tokens, each token's gap and each finished request. Defined here, apart from both
/// the loop and the metrics, so that neither imports the other. Called on the loop's thread; the per-step and per-token
/// members must not allocate.
/// </summary>
internal interface IEngineObserver
{
    /// <summary>Whether <see cref="RecordInterTokenLatency"/> has a listener (checked once per step before timing tokens).</summary>
    bool InterTokenLatencyEnabled { get; }

    /// <summary>Binds the observer to <paramref name="gauges"/> (read from any thread when measured). Called once, at construction.</summary>
    void Attach(IEngineGauges gauges);

    /// <summary>Records one inter-token gap, in seconds.</summary>
    void RecordInterTokenLatency(double seconds);

    /// <summary>Records the tokens one engine step computed (prompt chunks and decoded tokens).</summary>
    void RecordIterationTokens(int tokens);

    /// <summary>
    /// Records one engine step's model time in seconds (the runner's forward calls), and whether the step computed prompt
    /// tokens (a prefill chunk, alone or beside decodes) or only decoded one token per row.
    /// </summary>
    void RecordStepTime(double seconds, bool withPrompt);

    /// <summary>
    /// Records how long a sequence admitted with blocks still being copied in from the host KV tier (ADR 0009) waited for
    /// their copies before it joined the steps, in seconds.
    /// </summary>
    void RecordKvLoadWait(double seconds);

    /// <summary>Records one finished sequence: its token counts, finish reason and phase times in seconds (null: the phase never began).</summary>
    void RequestFinished(FinishReason reason, int promptTokens, int generationTokens, double queueSeconds, double? timeToFirstTokenSeconds, double? prefillSeconds, double? decodeSeconds, double e2eSeconds);
}
