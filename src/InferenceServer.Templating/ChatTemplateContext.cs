// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text.Json;
using InferenceServer.Templating.Internal;

namespace InferenceServer.Templating;

/// <summary>
/// The variables a template is rendered with (<c>messages</c>, <c>add_generation_prompt</c>, <c>bos_token</c>,
/// <c>tools</c>, extra keyword arguments...). JSON values are converted once into the engine's Python-like values,
/// keeping object key order. A context is not thread-safe; build one per render.
/// </summary>
internal sealed class ChatTemplateContext
{
    private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);

    /// <summary>Creates an empty context rendered under <paramref name="options"/> (the defaults when null).</summary>
    /// <param name="options">The clock and limits.</param>
    public ChatTemplateContext(ChatTemplateOptions? options = null)
    {
        Options = options ?? ChatTemplateOptions.Default;
    }

    /// <summary>The clock and limits the render runs under.</summary>
    public ChatTemplateOptions Options { get; }

    /// <summary>Sets a variable to a JSON value (object, array, string, number, boolean or null).</summary>
    /// <param name="name">The variable name.</param>
    /// <param name="value">The value; an undefined <see cref="JsonElement"/> removes the variable.</param>
    /// <returns>This context.</returns>
    public ChatTemplateContext Set(string name, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Undefined)
        {
            _variables.Remove(name);
            return this;
        }

        _variables[name] = PyJson.FromElement(value);
        return this;
    }

    /// <summary>Sets a variable to a string, or to <c>None</c> when <paramref name="value"/> is null.</summary>
    /// <param name="name">The variable name.</param>
    /// <param name="value">The value.</param>
    /// <returns>This context.</returns>
    public ChatTemplateContext Set(string name, string? value)
    {
        _variables[name] = value;
        return this;
    }

    /// <summary>Sets a variable to a boolean.</summary>
    /// <param name="name">The variable name.</param>
    /// <param name="value">The value.</param>
    /// <returns>This context.</returns>
    public ChatTemplateContext Set(string name, bool value)
    {
        _variables[name] = value;
        return this;
    }

    /// <summary>Sets a variable to an integer.</summary>
    /// <param name="name">The variable name.</param>
    /// <param name="value">The value.</param>
    /// <returns>This context.</returns>
    public ChatTemplateContext Set(string name, long value)
    {
        _variables[name] = value;
        return this;
    }

    /// <summary>Sets a variable to a list of strings (e.g. <c>additional_special_tokens</c>).</summary>
    /// <param name="name">The variable name.</param>
    /// <param name="values">The strings.</param>
    /// <returns>This context.</returns>
    public ChatTemplateContext Set(string name, IReadOnlyList<string> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var items = new List<object?>(values.Count);
        foreach (string value in values)
        {
            items.Add(value);
        }

        _variables[name] = new PyList(items);
        return this;
    }

    /// <summary>Sets a variable to a list of JSON values (e.g. <c>messages</c>).</summary>
    /// <param name="name">The variable name.</param>
    /// <param name="values">The values.</param>
    /// <returns>This context.</returns>
    public ChatTemplateContext Set(string name, IReadOnlyList<JsonElement> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var items = new List<object?>(values.Count);
        foreach (JsonElement value in values)
        {
            items.Add(PyJson.FromElement(value));
        }

        _variables[name] = new PyList(items);
        return this;
    }

    /// <summary>Whether a variable is set.</summary>
    /// <param name="name">The variable name.</param>
    /// <returns>True when set (even to <c>None</c>).</returns>
    public bool Contains(string name) => _variables.ContainsKey(name);

    /// <summary>Copies the variables into the render's top frame.</summary>
    internal void CopyTo(Scope scope)
    {
        foreach (KeyValuePair<string, object?> variable in _variables)
        {
            scope.Set(variable.Key, variable.Value);
        }
    }
}
