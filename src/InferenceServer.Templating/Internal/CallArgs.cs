// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>The evaluated arguments of a call: positional values, then keyword names and values.</summary>
internal readonly struct CallArgs
{
    private static readonly object?[] NoValues = [];
    private static readonly string[] NoNames = [];

    /// <summary>Creates the arguments.</summary>
    public CallArgs(object?[] positional, string[]? names = null, object?[]? namedValues = null)
    {
        Positional = positional;
        Names = names ?? NoNames;
        NamedValues = namedValues ?? NoValues;
    }

    /// <summary>No arguments.</summary>
    public static CallArgs Empty => new(NoValues);

    /// <summary>The positional arguments.</summary>
    public object?[] Positional { get; }

    /// <summary>The keyword argument names.</summary>
    public string[] Names { get; }

    /// <summary>The keyword argument values, parallel to <see cref="Names"/>.</summary>
    public object?[] NamedValues { get; }

    /// <summary>The number of positional arguments.</summary>
    public int Count => Positional.Length;

    /// <summary>The argument at <paramref name="index"/> or named <paramref name="name"/>, if given.</summary>
    public bool TryGet(int index, string name, out object? value)
    {
        if (index >= 0 && index < Positional.Length)
        {
            value = Positional[index];
            return true;
        }

        for (int i = 0; i < Names.Length; i++)
        {
            if (Names[i] == name)
            {
                value = NamedValues[i];
                return true;
            }
        }

        value = null;
        return false;
    }

    /// <summary>The argument at <paramref name="index"/> or named <paramref name="name"/>, else <paramref name="defaultValue"/>.</summary>
    public object? Get(int index, string name, object? defaultValue = null) => TryGet(index, name, out object? value) ? value : defaultValue;

    /// <summary>The argument at <paramref name="index"/> or named <paramref name="name"/>; raises when missing.</summary>
    public object? Required(int index, string name, string function)
        => TryGet(index, name, out object? value)
            ? value
            : throw ChatTemplateException.Runtime($"TypeError: {function}() missing required argument '{name}'");

    /// <summary>Raises when more than <paramref name="max"/> positional arguments were given.</summary>
    public void AtMost(int max, string function)
    {
        if (Positional.Length > max)
        {
            throw ChatTemplateException.Runtime($"TypeError: {function}() takes at most {max} positional arguments ({Positional.Length} given)");
        }
    }

    /// <summary>A copy with <paramref name="first"/> prepended to the positional arguments (a filter's input value).</summary>
    public CallArgs Prepend(object? first)
    {
        var positional = new object?[Positional.Length + 1];
        positional[0] = first;
        Positional.CopyTo(positional, 1);
        return new CallArgs(positional, Names, NamedValues);
    }

    /// <summary>A copy without the first <paramref name="count"/> positional arguments.</summary>
    public CallArgs Skip(int count) => new(Positional.Length <= count ? NoValues : Positional[count..], Names, NamedValues);
}
