// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Onnx.Runtime;

/// <summary>Which positions of a <see cref="ForwardBatch"/> row return logits.</summary>
public enum RowLogits
{
    /// <summary>None: the row only writes its KV (a prefill chunk that does not reach the end of the prompt).</summary>
    None = 0,

    /// <summary>The row's last new position: the distribution of the next token, for sampling.</summary>
    Last,

    /// <summary>
    /// Every new position, in order (one vocabulary-sized row each; the last is the same as <see cref="Last"/>'s):
    /// for prompt logprobs, which need the distribution after each prompt prefix.
    /// </summary>
    All,
}
