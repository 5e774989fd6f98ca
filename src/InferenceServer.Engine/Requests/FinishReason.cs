// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Engine.Requests;

/// <summary>Why a sequence stopped, in OpenAI's vocabulary where it has one.</summary>
public enum FinishReason
{
    /// <summary>Not finished.</summary>
    None = 0,

    /// <summary>An end-of-sequence token, a stop token id or a stop string.</summary>
    Stop,

    /// <summary><c>max_tokens</c> reached or the context is full.</summary>
    Length,

    /// <summary>The caller cancelled or disconnected.</summary>
    Cancelled,

    /// <summary>The engine failed while running the request.</summary>
    Error,
}
