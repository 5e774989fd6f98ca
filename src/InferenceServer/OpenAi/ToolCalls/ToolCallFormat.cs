// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>
/// How a chat-template family writes an assistant tool call in the text the model generates. Each value names the
/// vLLM tool parser (<c>--tool-call-parser</c>) whose behaviour ours follows.
/// </summary>
internal enum ToolCallFormat
{
    /// <summary>The template cannot show the model tools or tool calls: nothing is parsed, and a request with
    /// <c>tools</c> cannot be served.</summary>
    None,

    /// <summary>Qwen 2.5 / Hermes 2 Pro, and the fallback for templates that render <c>tools</c> in an unknown way:
    /// <c>&lt;tool_call&gt;\n{"name": ..., "arguments": {...}}\n&lt;/tool_call&gt;</c>, possibly several (vLLM <c>hermes</c>).</summary>
    Hermes,

    /// <summary>Llama 3.1 / 3.2 JSON: the whole output is <c>{"name": ..., "parameters": {...}}</c>, possibly after
    /// <c>&lt;|python_tag|&gt;</c>, several separated by <c>;</c> (vLLM <c>llama3_json</c>).</summary>
    Llama3Json,

    /// <summary>Mistral 7B Instruct v0.3: <c>[TOOL_CALLS] [{"name": ..., "arguments": {...}}]</c>, and the v11 tokenizer
    /// form <c>[TOOL_CALLS]name{...}</c> / <c>[TOOL_CALLS]name[ARGS]{...}</c>; ids are 9 alphanumerics (vLLM <c>mistral</c>).</summary>
    Mistral,

    /// <summary>DeepSeek V3 / R1: <c>&lt;｜tool▁calls▁begin｜&gt;&lt;｜tool▁call▁begin｜&gt;function&lt;｜tool▁sep｜&gt;NAME\n```json\n{...}\n```&lt;｜tool▁call▁end｜&gt;...</c>,
    /// and the V3.1 form <c>&lt;｜tool▁call▁begin｜&gt;NAME&lt;｜tool▁sep｜&gt;{...}&lt;｜tool▁call▁end｜&gt;</c> (vLLM <c>deepseek_v3</c>, <c>deepseek_v31</c>).</summary>
    DeepSeek,
}
