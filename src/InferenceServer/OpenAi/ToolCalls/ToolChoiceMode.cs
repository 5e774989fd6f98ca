// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>OpenAI's <c>tool_choice</c> kinds.</summary>
internal enum ToolChoiceMode
{
    /// <summary><c>"none"</c>: the model must not call tools; output is content only (the default without tools).</summary>
    None,

    /// <summary><c>"auto"</c>: the model may call tools; the output is parsed (the default with tools).</summary>
    Auto,

    /// <summary><c>"required"</c>: at least one call; output constrained by <see cref="ToolChoiceSchemas.ForRequired(ToolDefinitions)"/>.</summary>
    Required,

    /// <summary><c>{"type": "function", "function": {"name": ...}}</c>: exactly that function; output constrained to its parameters.</summary>
    Function,
}
