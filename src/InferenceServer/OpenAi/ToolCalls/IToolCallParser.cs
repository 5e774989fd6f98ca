// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>
/// Finds tool calls in the text a model generated, for one chat-template family. Stateless and thread-safe: one
/// instance serves every request of a model.
/// </summary>
/// <remarks>
/// Streaming contract: while text streams, show <c>textSoFar[..SafeContentPrefixLength(textSoFar)]</c> as content
/// (minus what was already shown); when generation ends, call <see cref="Parse"/> on the whole text. Its
/// <see cref="ToolCallParseResult.Content"/> always starts with every prefix that was declared safe, so the remainder
/// of the content and then the tool calls can be sent. The markers a family uses must survive detokenization
/// (vLLM turns <c>skip_special_tokens</c> off when tools are in play for this reason).
/// </remarks>
internal interface IToolCallParser
{
    /// <summary>The family this parser reads.</summary>
    ToolCallFormat Format { get; }

    /// <summary>
    /// Splits <paramref name="generatedText"/> into content and tool calls. Never throws on model output: text that
    /// looks like a tool call but does not parse (bad JSON, missing name, a name not in
    /// <paramref name="functionNames"/>) is returned whole as content, as vLLM does.
    /// </summary>
    /// <param name="generatedText">The complete generated text, special tokens included.</param>
    /// <param name="functionNames">The request's declared function names; null accepts any name.</param>
    ToolCallParseResult Parse(string generatedText, IReadOnlySet<string>? functionNames = null);

    /// <summary>
    /// How many leading characters of <paramref name="textSoFar"/> are certainly content whatever follows: text
    /// before a tool-call marker, holding back a suffix that may be the start of a marker (<c>"Hello &lt;tool_"</c>
    /// gives 5), trailing white space, and everything while the text might still turn out to be a call. Never
    /// decreases as text grows. Allocation-free, linear in the text: fine per token (a span over the caller's buffer).
    /// </summary>
    int SafeContentPrefixLength(ReadOnlySpan<char> textSoFar);
}
