// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>A validated <c>tool_choice</c>.</summary>
/// <param name="Mode">The kind of choice.</param>
/// <param name="FunctionName">The named function for <see cref="ToolChoiceMode.Function"/>, else null.</param>
internal sealed record ToolChoice(ToolChoiceMode Mode, string? FunctionName = null)
{
    /// <summary><c>"none"</c>.</summary>
    public static ToolChoice None { get; } = new(ToolChoiceMode.None);

    /// <summary><c>"auto"</c>.</summary>
    public static ToolChoice Auto { get; } = new(ToolChoiceMode.Auto);

    /// <summary><c>"required"</c>.</summary>
    public static ToolChoice Required { get; } = new(ToolChoiceMode.Required);

    /// <summary>Whether the output must be constrained by a JSON schema from <see cref="ToolChoiceSchemas"/>.</summary>
    public bool IsConstrained => Mode is ToolChoiceMode.Required or ToolChoiceMode.Function;
}
