// Licensed under the MIT License. See LICENSE in the repository root.
using System.Text.RegularExpressions;

namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>Chooses the tool-call parser for a chat template from the template's source text.</summary>
/// <remarks>
/// Detection looks for the markers a family's template writes when it renders an assistant tool call, in this
/// order: DeepSeek's <c>tool▁call▁begin</c>, Mistral's <c>[TOOL_CALLS]</c>, Hermes' <c>&lt;tool_call&gt;</c>, Llama 3's
/// <c>&lt;|python_tag|&gt;</c> or <c>Environment: ipython</c>. A template that reads <c>tools</c> but has none of them
/// gets the Hermes parser, vLLM's most common choice (and the format of Qwen, Hermes and many fine-tunes). A
/// template that reads neither <c>tools</c> nor any marker (Phi-3.5, Gemma 2, the Mistral v0.3 release template)
/// has no parser: it cannot show tools to the model.
/// </remarks>
internal static partial class ToolCallParsers
{
    /// <summary>Reads what <paramref name="chatTemplateSource"/> does with tools.</summary>
    public static ToolTemplateSupport Describe(string chatTemplateSource)
    {
        ArgumentNullException.ThrowIfNull(chatTemplateSource);
        var rendersTools = ToolsVariable().IsMatch(chatTemplateSource);
        ToolCallFormat format;
        if (chatTemplateSource.Contains("tool▁call▁begin", StringComparison.Ordinal)
            || chatTemplateSource.Contains("tool▁calls▁begin", StringComparison.Ordinal))
        {
            format = ToolCallFormat.DeepSeek;
        }
        else if (chatTemplateSource.Contains(MistralToolCallParser.Marker, StringComparison.Ordinal))
        {
            format = ToolCallFormat.Mistral;
        }
        else if (chatTemplateSource.Contains(HermesToolCallParser.StartTag, StringComparison.Ordinal))
        {
            format = ToolCallFormat.Hermes;
        }
        else if (chatTemplateSource.Contains(Llama3JsonToolCallParser.PythonTag, StringComparison.Ordinal)
            || chatTemplateSource.Contains("Environment: ipython", StringComparison.Ordinal))
        {
            format = ToolCallFormat.Llama3Json;
        }
        else
        {
            format = rendersTools ? ToolCallFormat.Hermes : ToolCallFormat.None;
        }

        return new ToolTemplateSupport(format, rendersTools);
    }

    /// <summary>The parser for <paramref name="chatTemplateSource"/>, or null when the template has no tool-call
    /// format (<see cref="ToolCallFormat.None"/>).</summary>
    public static IToolCallParser? ForTemplate(string chatTemplateSource) => Create(Describe(chatTemplateSource).Format);

    /// <summary>The parser for <paramref name="format"/>, or null for <see cref="ToolCallFormat.None"/>.</summary>
    public static IToolCallParser? Create(ToolCallFormat format) => format switch
    {
        ToolCallFormat.Hermes => HermesToolCallParser.Instance,
        ToolCallFormat.Llama3Json => Llama3JsonToolCallParser.Instance,
        ToolCallFormat.Mistral => MistralToolCallParser.Instance,
        ToolCallFormat.DeepSeek => DeepSeekToolCallParser.Instance,
        ToolCallFormat.None => null,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown tool-call format."),
    };

    /// <summary>The identifier <c>tools</c> on its own (not <c>tool_calls</c>, <c>custom_tools</c> is fine: it is
    /// assigned to <c>tools</c>).</summary>
    [GeneratedRegex(@"(?<![A-Za-z0-9_])tools(?![A-Za-z0-9_])", RegexOptions.CultureInvariant)]
    private static partial Regex ToolsVariable();
}
