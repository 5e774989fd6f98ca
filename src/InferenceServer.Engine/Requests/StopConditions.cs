// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Requests;

/// <summary>When a sequence ends.</summary>
public sealed record StopConditions
{
    /// <summary>Most tokens to generate.</summary>
    public required int MaxTokens { get; init; }

    /// <summary>Fewest tokens to generate before end-of-sequence, stop token ids or stop strings may end the sequence.</summary>
    public int MinTokens { get; init; }

    /// <summary>Strings that end the sequence; the matched string is not part of the output.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Token ids that end the sequence (in addition to end-of-sequence); not part of the output text.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Keep generating past end-of-sequence tokens.</summary>
    public bool IgnoreEos { get; init; }
}
