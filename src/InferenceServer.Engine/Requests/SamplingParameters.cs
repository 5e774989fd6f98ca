// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Requests;

/// <summary>How the next token is chosen from the logits.</summary>
public sealed record SamplingParameters
{
    /// <summary>Greedy decoding: temperature 0.</summary>
    public static SamplingParameters Greedy { get; } = new() { Temperature = 0 };

    /// <summary>Softmax temperature; 0 picks the most likely token (greedy). Default 1.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches this. Default 1 (off).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Keep only the k most likely tokens; 0 or -1 keeps all (the default).</summary>
    public int TopK { get; init; }

    /// <summary>Seed of the request's random generator; the same seed gives the same output. Null draws a fresh seed.</summary>
    public long? Seed { get; init; }

    /// <summary>True when sampling reduces to argmax.</summary>
    public bool IsGreedy => Temperature <= 0 || TopK == 1;
}
