// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;

namespace InferenceServer.Templating.Internal;

/// <summary>
/// The Python methods templates call on strings, dicts, lists and the loop (<c>.strip()</c>, <c>.split()</c>,
/// <c>.items()</c>, <c>.get()</c>, <c>loop.cycle()</c>...). Methods that mutate a list or dict are refused, as
/// transformers' immutable sandbox refuses them.
/// </summary>
internal static class Methods
{
    private static readonly HashSet<string> StringMethods =
    [
        "capitalize", "casefold", "center", "count", "endswith", "find", "format", "index", "isalnum", "isalpha",
        "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust", "lower",
        "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition",
        "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill",
    ];

    private static readonly HashSet<string> DictMethods = ["get", "items", "keys", "values", "copy"];
    private static readonly HashSet<string> DictMutators = ["clear", "pop", "popitem", "setdefault", "update"];
    private static readonly HashSet<string> ListMethods = ["count", "index", "copy"];
    private static readonly HashSet<string> ListMutators = ["append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"];

    /// <summary>Whether <paramref name="name"/> is a Python attribute (method) of <paramref name="target"/>.</summary>
    public static bool IsMethod(object target, string name) => target switch
    {
        string => StringMethods.Contains(name),
        PyDict => DictMethods.Contains(name) || DictMutators.Contains(name),
        PyList { IsTuple: true } => name is "count" or "index",
        PyList => ListMethods.Contains(name) || ListMutators.Contains(name),
        _ => false,
    };

    /// <summary>The bound method, or an undefined that raises a security error for a mutating method.</summary>
    public static object Bind(object target, string name)
        => IsMutator(target, name)
            ? new Undefined($"access to attribute '{name}' of '{PyFormat.TypeName(target)}' object is unsafe.", "SecurityError")
            : new BoundMethod(target, name);

    /// <summary>Calls <c>target.name(args)</c>.</summary>
    public static object? Call(RenderState state, object target, string name, CallArgs args)
    {
        switch (target)
        {
            case string s:
                return CallString(s, name, args);
            case PyDict dict when DictMethods.Contains(name):
                return CallDict(dict, name, args);
            case PyList list when ListMethods.Contains(name):
                return CallList(list, name, args);
            case LoopContext loop when name == "cycle":
                return loop.Cycle(args);
            case LoopContext loop when name == "changed":
                return loop.Changed(args);
            default:
                if (IsMutator(target, name))
                {
                    throw ChatTemplateException.Runtime($"SecurityError: access to attribute '{name}' of '{PyFormat.TypeName(target)}' object is unsafe.");
                }

                throw ChatTemplateException.Runtime($"UndefinedError: '{PyFormat.TypeName(target)} object' has no attribute '{name}'");
        }
    }

    /// <summary><c>dict.items()</c>: the (key, value) tuples in insertion order.</summary>
    public static PyList Items(PyDict dict)
    {
        var items = new List<object?>(dict.Count);
        for (int i = 0; i < dict.Count; i++)
        {
            items.Add(PyList.Pair(dict.KeyAt(i), dict.ValueAt(i)));
        }

        return new PyList(items);
    }

    private static bool IsMutator(object target, string name) => target switch
    {
        PyDict => DictMutators.Contains(name),
        PyList { IsTuple: false } => ListMutators.Contains(name),
        _ => false,
    };

    private static object? CallDict(PyDict dict, string name, CallArgs args)
    {
        switch (name)
        {
            case "get":
                object? key = args.Required(0, "key", "get");
                return dict.TryGet(key, out object? value) ? value : args.Get(1, "default");
            case "items":
                return Items(dict);
            case "keys":
                var keys = new List<object?>(dict.Count);
                for (int i = 0; i < dict.Count; i++)
                {
                    keys.Add(dict.KeyAt(i));
                }

                return new PyList(keys);
            case "values":
                var values = new List<object?>(dict.Count);
                for (int i = 0; i < dict.Count; i++)
                {
                    values.Add(dict.ValueAt(i));
                }

                return new PyList(values);
            default:
                var copy = new PyDict(dict.Count);
                for (int i = 0; i < dict.Count; i++)
                {
                    copy.Set(dict.KeyAt(i), dict.ValueAt(i));
                }

                return copy;
        }
    }

    private static object? CallList(PyList list, string name, CallArgs args)
    {
        switch (name)
        {
            case "count":
                object? needle = args.Required(0, "value", "count");
                long count = 0;
                foreach (object? item in list.Items)
                {
                    if (PyOps.AreEqual(item, needle))
                    {
                        count++;
                    }
                }

                return count;
            case "index":
                object? wanted = args.Required(0, "value", "index");
                for (int i = 0; i < list.Count; i++)
                {
                    if (PyOps.AreEqual(list[i], wanted))
                    {
                        return (long)i;
                    }
                }

                throw ChatTemplateException.Runtime($"ValueError: {PyFormat.Repr(wanted)} is not in list");
            default:
                return new PyList([.. list.Items], list.IsTuple);
        }
    }

    private static object? CallString(string s, string name, CallArgs args)
    {
        switch (name)
        {
            case "strip":
                return PyString.Strip(s, OptionalString(args, 0, "chars"));
            case "lstrip":
                return PyString.LStrip(s, OptionalString(args, 0, "chars"));
            case "rstrip":
                return PyString.RStrip(s, OptionalString(args, 0, "chars"));
            case "split":
                return PyString.Split(s, OptionalString(args, 0, "sep"), args.TryGet(1, "maxsplit", out object? max) ? PyOps.ToLong(max) : -1);
            case "rsplit":
                return PyString.RSplit(s, OptionalString(args, 0, "sep"), args.TryGet(1, "maxsplit", out object? rmax) ? PyOps.ToLong(rmax) : -1);
            case "splitlines":
                return SplitLines(s, args.Get(0, "keepends") is { } keep && PyOps.IsTruthy(keep));
            case "startswith":
                return Affix(s, args.Required(0, "prefix", "startswith"), static (text, p) => text.StartsWith(p, StringComparison.Ordinal));
            case "endswith":
                return Affix(s, args.Required(0, "suffix", "endswith"), static (text, p) => text.EndsWith(p, StringComparison.Ordinal));
            case "upper":
                return PyString.Upper(s);
            case "lower":
            case "casefold":
                return s.ToLowerInvariant();
            case "title":
                return PyString.Title(s);
            case "capitalize":
                return PyString.Capitalize(s);
            case "swapcase":
                var swapped = new StringBuilder(s.Length);
                foreach (char c in s)
                {
                    swapped.Append(char.IsUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
                }

                return swapped.ToString();
            case "replace":
                return Replace(s, RequiredString(args, 0, "old", name), RequiredString(args, 1, "new", name), args.TryGet(2, "count", out object? n) ? PyOps.ToLong(n) : -1);
            case "find":
            case "index":
            case "rfind":
            case "rindex":
                string sub = RequiredString(args, 0, "sub", name);
                int at = name[0] == 'r' ? s.LastIndexOf(sub, StringComparison.Ordinal) : s.IndexOf(sub, StringComparison.Ordinal);
                if (at < 0 && name.EndsWith("index", StringComparison.Ordinal))
                {
                    throw ChatTemplateException.Runtime("ValueError: substring not found");
                }

                return at < 0 ? -1L : (long)PyString.Length(s[..at]);
            case "count":
                string what = RequiredString(args, 0, "sub", name);
                if (what.Length == 0)
                {
                    return (long)PyString.Length(s) + 1;
                }

                long found = 0;
                for (int i = s.IndexOf(what, StringComparison.Ordinal); i >= 0; i = s.IndexOf(what, i + what.Length, StringComparison.Ordinal))
                {
                    found++;
                }

                return found;
            case "join":
                var sb = new StringBuilder();
                List<object?> parts = PyOps.Iterate(args.Required(0, "iterable", "join"));
                for (int i = 0; i < parts.Count; i++)
                {
                    if (parts[i] is not string part)
                    {
                        throw ChatTemplateException.Runtime($"TypeError: sequence item {i}: expected str instance, {PyFormat.TypeName(parts[i])} found");
                    }

                    if (i > 0)
                    {
                        sb.Append(s);
                    }

                    sb.Append(part);
                }

                return sb.ToString();
            case "center":
                return PyString.Center(s, PyOps.ToWidth(args.Required(0, "width", name)), FillChar(args));
            case "ljust":
            case "rjust":
                int width = PyOps.ToWidth(args.Required(0, "width", name));
                int pad = width - PyString.Length(s);
                return pad <= 0 ? s : name == "ljust" ? s + new string(FillChar(args), pad) : new string(FillChar(args), pad) + s;
            case "zfill":
                int zwidth = PyOps.ToWidth(args.Required(0, "width", name));
                int zeros = zwidth - PyString.Length(s);
                if (zeros <= 0)
                {
                    return s;
                }

                return s.Length > 0 && (s[0] == '-' || s[0] == '+') ? s[0] + new string('0', zeros) + s[1..] : new string('0', zeros) + s;
            case "removeprefix":
                string prefix = RequiredString(args, 0, "prefix", name);
                return s.StartsWith(prefix, StringComparison.Ordinal) ? s[prefix.Length..] : s;
            case "removesuffix":
                string suffix = RequiredString(args, 0, "suffix", name);
                return suffix.Length > 0 && s.EndsWith(suffix, StringComparison.Ordinal) ? s[..^suffix.Length] : s;
            case "partition":
            case "rpartition":
                string separator = RequiredString(args, 0, "sep", name);
                int cut = name == "partition" ? s.IndexOf(separator, StringComparison.Ordinal) : s.LastIndexOf(separator, StringComparison.Ordinal);
                return cut < 0
                    ? new PyList(name == "partition" ? [s, string.Empty, string.Empty] : [string.Empty, string.Empty, s], isTuple: true)
                    : new PyList([s[..cut], separator, s[(cut + separator.Length)..]], isTuple: true);
            case "format":
                return StringFormat.Format(s, args);
            default:
                return Predicate(s, name);
        }
    }

    /// <summary>Python's <c>str.islower()</c>: at least one cased character and no upper-case one.</summary>
    public static bool IsLower(string s) => Predicate(s, "islower");

    /// <summary>Python's <c>str.isupper()</c>: at least one cased character and no lower-case one.</summary>
    public static bool IsUpper(string s) => Predicate(s, "isupper");

    private static bool Predicate(string s, string name)
    {
        if (s.Length == 0)
        {
            return false;
        }

        bool anyCased = false;
        foreach (char c in s)
        {
            bool ok = name switch
            {
                "isalnum" => char.IsLetterOrDigit(c),
                "isalpha" => char.IsLetter(c),
                "isdecimal" or "isdigit" => char.IsDigit(c),
                "isnumeric" => char.IsNumber(c),
                "isspace" => PyString.IsWhiteSpace(c),
                "islower" => !char.IsUpper(c),
                "isupper" => !char.IsLower(c),
                _ => true,
            };
            if (!ok)
            {
                return false;
            }

            anyCased |= char.IsUpper(c) || char.IsLower(c);
        }

        return name switch
        {
            "islower" or "isupper" => anyCased,
            "istitle" => anyCased && PyString.Title(s) == s,
            _ => true,
        };
    }

    private static bool Affix(string s, object? affix, Func<string, string, bool> test)
    {
        if (affix is string single)
        {
            return test(s, single);
        }

        if (affix is PyList { IsTuple: true } options)
        {
            foreach (object? option in options.Items)
            {
                if (option is string o && test(s, o))
                {
                    return true;
                }
            }

            return false;
        }

        throw ChatTemplateException.Runtime($"TypeError: startswith/endswith first arg must be str or a tuple of str, not {PyFormat.TypeName(affix)}");
    }

    /// <summary>Python's <c>str.replace(old, new, count)</c>.</summary>
    public static string Replace(string s, string old, string replacement, long count)
    {
        if (count < 0)
        {
            if (old.Length == 0)
            {
                return Replace(s, old, replacement, PyString.Length(s) + 1);
            }

            return s.Replace(old, replacement, StringComparison.Ordinal);
        }

        var sb = new StringBuilder();
        int from = 0;
        long done = 0;
        if (old.Length == 0)
        {
            List<object?> points = PyString.CodePoints(s);
            foreach (object? point in points)
            {
                if (done < count)
                {
                    sb.Append(replacement);
                    done++;
                }

                sb.Append((string)point!);
            }

            if (done < count)
            {
                sb.Append(replacement);
            }

            return sb.ToString();
        }

        while (done < count)
        {
            int at = s.IndexOf(old, from, StringComparison.Ordinal);
            if (at < 0)
            {
                break;
            }

            sb.Append(s, from, at - from).Append(replacement);
            from = at + old.Length;
            done++;
        }

        return sb.Append(s, from, s.Length - from).ToString();
    }

    private static PyList SplitLines(string s, bool keepEnds)
    {
        var lines = new List<object?>();
        int start = 0;
        int i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            bool isBreak = c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029';
            if (!isBreak)
            {
                i++;
                continue;
            }

            int end = i;
            i += c == '\r' && i + 1 < s.Length && s[i + 1] == '\n' ? 2 : 1;
            lines.Add(keepEnds ? s[start..i] : s[start..end]);
            start = i;
        }

        if (start < s.Length)
        {
            lines.Add(s[start..]);
        }

        return new PyList(lines);
    }

    private static char FillChar(CallArgs args)
    {
        object? fill = args.Get(1, "fillchar", " ");
        return fill is string { Length: 1 } f ? f[0] : throw ChatTemplateException.Runtime("TypeError: The fill character must be exactly one character long");
    }

    private static string? OptionalString(CallArgs args, int index, string name)
        => args.Get(index, name) switch
        {
            null => null,
            string s => s,
            object other => throw ChatTemplateException.Runtime($"TypeError: {name} must be None or str, not {PyFormat.TypeName(other)}"),
        };

    private static string RequiredString(CallArgs args, int index, string name, string function)
    {
        object? value = args.Required(index, name, function);
        return value as string
            ?? throw ChatTemplateException.Runtime($"TypeError: {function}() argument {index + 1} must be str, not {PyFormat.TypeName(value)}");
    }
}
