// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;
using InferenceServer.Engine.Requests;
using InferenceServer.Serving;

namespace InferenceServer.OpenAi;

/// <summary>
/// Writes one response's JSON in its endpoint's shape (<c>text_completion</c> or <c>chat.completion</c>); the
/// <see cref="GenerationRunner"/> drives it. One instance per response; stream writers may keep per-choice state.
/// </summary>
internal interface IResponseWriter
{
    /// <summary>The request's shared settings.</summary>
    GenerationSettings Settings { get; }

    /// <summary>The prompt behind choice <paramref name="choice"/>.</summary>
    int PromptIndex(int choice);

    /// <summary>Writes the non-streamed response.</summary>
    void WriteComplete(IBufferWriter<byte> output, IReadOnlyList<ChoiceResult> choices);

    /// <summary>
    /// Writes the Server-Sent Events (<c>data: ...\n\n</c>, zero or more) for one update of choice <paramref name="index"/>;
    /// <paramref name="first"/> marks the choice's first update.
    /// </summary>
    void WriteEvents(IBufferWriter<byte> output, int index, GenerationUpdate update, bool first);

    /// <summary>Writes the final usage event (<c>stream_options.include_usage</c>).</summary>
    void WriteUsageEvent(IBufferWriter<byte> output, UsageCounter usage);

    /// <summary>
    /// Ends a stream whose choices all finished: the usage event when the request asked for it, then
    /// <c>data: [DONE]</c> (the completion endpoints' end; the Responses API ends with its own event instead).
    /// </summary>
    void WriteStreamEnd(IBufferWriter<byte> output, UsageCounter usage)
    {
        if (Settings.IncludeUsage)
        {
            WriteUsageEvent(output, usage);
        }

        SseEvents.WriteDone(output);
    }

    /// <summary>Reports a choice that failed mid-stream and ends the stream: OpenAI's error envelope, then <c>data: [DONE]</c>.</summary>
    void WriteStreamError(IBufferWriter<byte> output, string message, string type, string code)
    {
        SseEvents.Write(output, OpenAiErrors.Envelope(message, type, null, code));
        SseEvents.WriteDone(output);
    }
}
