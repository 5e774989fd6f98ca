// Licensed under the MIT License. See LICENSE in the repository root.
using System.Buffers;

namespace InferenceServer.OpenAi;

/// <summary>Frames Server-Sent Events: <c>data: </c>, the payload, a blank line.</summary>
internal static class SseEvents
{
    private static ReadOnlySpan<byte> DataPrefix => "data: "u8;

    private static ReadOnlySpan<byte> EventEnd => "\n\n"u8;

    private static ReadOnlySpan<byte> EventPrefix => "event: "u8;

    private static ReadOnlySpan<byte> Done => "data: [DONE]\n\n"u8;

    /// <summary>Writes the event prefix; the caller writes the payload, then <see cref="End"/>.</summary>
    public static void Begin(IBufferWriter<byte> output) => output.Write(DataPrefix);

    /// <summary>
    /// Writes the prefix of a named event (<c>event: name</c>, then <c>data: </c>), as the Responses API frames its events;
    /// the caller writes the payload, then <see cref="End"/>.
    /// </summary>
    public static void Begin(IBufferWriter<byte> output, ReadOnlySpan<byte> eventName)
    {
        output.Write(EventPrefix);
        output.Write(eventName);
        output.Write("\n"u8);
        output.Write(DataPrefix);
    }

    /// <summary>Writes <c>data: [DONE]</c>, which ends the completion endpoints' streams.</summary>
    public static void WriteDone(IBufferWriter<byte> output) => output.Write(Done);

    /// <summary>Ends an event.</summary>
    public static void End(IBufferWriter<byte> output) => output.Write(EventEnd);

    /// <summary>Writes one whole event.</summary>
    public static void Write(IBufferWriter<byte> output, ReadOnlySpan<byte> payload)
    {
        output.Write(DataPrefix);
        output.Write(payload);
        output.Write(EventEnd);
    }
}
