// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.OpenAi.ToolCalls;

/// <summary>The request's validated <c>tools</c>, made by <see cref="ToolValidation.ParseTools"/>.</summary>
internal sealed class ToolDefinitions
{
    private readonly Dictionary<string, FunctionTool> _byName;

    /// <summary>Wraps <paramref name="functions"/>, whose names must be distinct.</summary>
    public ToolDefinitions(IReadOnlyList<FunctionTool> functions)
    {
        Functions = functions;
        _byName = new Dictionary<string, FunctionTool>(functions.Count, StringComparer.Ordinal);
        foreach (var function in functions)
        {
            _byName.Add(function.Name, function);
        }

        Names = _byName.Keys.ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>The functions, in request order.</summary>
    public IReadOnlyList<FunctionTool> Functions { get; }

    /// <summary>The declared names, for <see cref="IToolCallParser.Parse"/>.</summary>
    public IReadOnlySet<string> Names { get; }

    /// <summary>The function called <paramref name="name"/>, if declared.</summary>
    public bool TryGet(string name, out FunctionTool function) => _byName.TryGetValue(name, out function!);
}
