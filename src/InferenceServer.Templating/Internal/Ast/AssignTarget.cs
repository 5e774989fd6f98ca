// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>What a <c>set</c>, <c>for</c> or <c>with</c> assigns to: a name, <c>ns.attr</c>, or a tuple of targets.</summary>
internal sealed class AssignTarget
{
    /// <summary>The variable (or, with <see cref="Attribute"/>, the namespace variable); null for a tuple.</summary>
    public string? Name { get; init; }

    /// <summary>The namespace attribute assigned, or null.</summary>
    public string? Attribute { get; init; }

    /// <summary>The unpacked targets of a tuple, or null.</summary>
    public AssignTarget[]? Items { get; init; }

    /// <summary>Assigns <paramref name="value"/> in <paramref name="scope"/>, unpacking tuples as Python does.</summary>
    public void Assign(Scope scope, object? value)
    {
        if (Items is not null)
        {
            List<object?> values = PyOps.Iterate(value);
            if (values.Count != Items.Length)
            {
                throw ChatTemplateException.Runtime(values.Count < Items.Length
                    ? $"ValueError: not enough values to unpack (expected {Items.Length}, got {values.Count})"
                    : $"ValueError: too many values to unpack (expected {Items.Length})");
            }

            for (int i = 0; i < Items.Length; i++)
            {
                Items[i].Assign(scope, values[i]);
            }

            return;
        }

        if (Attribute is not null)
        {
            if (!scope.TryLookup(Name!, out object? target) || target is not Namespace ns)
            {
                throw ChatTemplateException.Runtime("TemplateRuntimeError: cannot assign attribute on non-namespace object");
            }

            ns.Attributes.Set(Attribute, value);
            return;
        }

        scope.Set(Name!, value);
    }
}
