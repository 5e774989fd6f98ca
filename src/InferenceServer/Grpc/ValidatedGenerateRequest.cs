// Licensed under the MIT License. See LICENSE in the repository root.
using InferenceServer.Engine.Requests;
using InferenceServer.Serving;

namespace InferenceServer.Grpc;

/// <summary>A Generate request checked against the served model, in the engine's terms.</summary>
internal sealed class ValidatedGenerateRequest
{
    /// <summary>The prompt as token ids.</summary>
    public required IReadOnlyList<int> PromptTokens { get; init; }

    /// <summary>Choices to generate (1 to <see cref="GenerationLimits.MaxN"/>).</summary>
    public required int N { get; init; }

    /// <summary>Sampling for choice 0; choice k uses seed + k when a seed is set.</summary>
    public required SamplingParameters Sampling { get; init; }

    /// <summary>Stop conditions.</summary>
    public required StopConditions Stop { get; init; }

    /// <summary>Scheduling priority (lower first).</summary>
    public required int Priority { get; init; }
}
