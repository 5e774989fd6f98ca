// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>
/// The global functions every render sees, below the context's variables: Jinja2's <c>range</c>, <c>dict</c>,
/// <c>namespace</c>, <c>joiner</c>, and transformers' <c>raise_exception</c> and <c>strftime_now</c>.
/// </summary>
internal static class Globals
{
    /// <summary>The longest <c>range</c> the sandbox allows (Jinja2's <c>MAX_RANGE</c>).</summary>
    public const int MaxRange = 100_000;

    /// <summary>The functions by name.</summary>
    public static readonly Dictionary<string, object?> Functions = new(StringComparer.Ordinal)
    {
        ["range"] = new BuiltinFunction("range", Range),
        ["dict"] = new BuiltinFunction("dict", Dict),
        ["namespace"] = new BuiltinFunction("namespace", NewNamespace),
        ["joiner"] = new BuiltinFunction("joiner", Joiner),
        ["raise_exception"] = new BuiltinFunction("raise_exception", RaiseException),
        ["strftime_now"] = new BuiltinFunction("strftime_now", StrftimeNow),
    };

    private static object? Range(RenderState state, CallArgs args)
    {
        long start = 0;
        long step = 1;
        long stop;
        switch (args.Count)
        {
            case 1:
                stop = PyOps.ToLong(args.Positional[0]);
                break;
            case 2:
            case 3:
                start = PyOps.ToLong(args.Positional[0]);
                stop = PyOps.ToLong(args.Positional[1]);
                step = args.Count == 3 ? PyOps.ToLong(args.Positional[2]) : 1;
                break;
            default:
                throw ChatTemplateException.Runtime($"TypeError: range expected 1 to 3 arguments, got {args.Count}");
        }

        if (step == 0)
        {
            throw ChatTemplateException.Runtime("ValueError: range() arg 3 must not be zero");
        }

        long count = step > 0 ? (stop - start + step - 1) / step : (start - stop - step - 1) / -step;
        if (count > MaxRange)
        {
            throw ChatTemplateException.Limit($"OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE ({MaxRange}).");
        }

        var items = new List<object?>((int)Math.Max(0, count));
        for (long i = 0; i < count; i++)
        {
            items.Add(start + (i * step));
        }

        return new PyList(items);
    }

    private static object? Dict(RenderState state, CallArgs args)
    {
        var dict = new PyDict();
        if (args.Count > 0)
        {
            if (args.Positional[0] is PyDict source)
            {
                for (int i = 0; i < source.Count; i++)
                {
                    dict.Set(source.KeyAt(i), source.ValueAt(i));
                }
            }
            else
            {
                foreach (object? pair in PyOps.Iterate(args.Positional[0]))
                {
                    List<object?> kv = PyOps.Iterate(pair);
                    if (kv.Count != 2)
                    {
                        throw ChatTemplateException.Runtime("ValueError: dictionary update sequence element has wrong length; 2 is required");
                    }

                    dict.Set(kv[0], kv[1]);
                }
            }
        }

        for (int i = 0; i < args.Names.Length; i++)
        {
            dict.Set(args.Names[i], args.NamedValues[i]);
        }

        return dict;
    }

    private static object? NewNamespace(RenderState state, CallArgs args)
    {
        var ns = new Namespace();
        if (args.Count > 0 && args.Positional[0] is PyDict initial)
        {
            for (int i = 0; i < initial.Count; i++)
            {
                ns.Attributes.Set(initial.KeyAt(i), initial.ValueAt(i));
            }
        }

        for (int i = 0; i < args.Names.Length; i++)
        {
            ns.Attributes.Set(args.Names[i], args.NamedValues[i]);
        }

        return ns;
    }

    private static object? Joiner(RenderState state, CallArgs args)
    {
        string separator = PyFormat.Str(args.Get(0, "sep", ", "));
        bool used = false;
        return new BuiltinFunction("joiner", (_, _) =>
        {
            if (!used)
            {
                used = true;
                return string.Empty;
            }

            return separator;
        });
    }

    private static object? RaiseException(RenderState state, CallArgs args)
        => throw new ChatTemplateException(PyFormat.Str(args.Get(0, "message", string.Empty)), ChatTemplateErrorKind.RaisedByTemplate, null);

    private static object? StrftimeNow(RenderState state, CallArgs args)
    {
        object? format = args.Required(0, "format", "strftime_now");
        return format is string f
            ? PyStrftime.Format(state.Options.TimeProvider.GetLocalNow(), f)
            : throw ChatTemplateException.Runtime("TypeError: strftime_now() argument must be str");
    }
}
