// Licensed under the MIT License. See LICENSE in the repository root.

using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace InferenceServer.Templating.Internal;

/// <summary>
/// Jinja2's built-in filters as the chat templates use them, with Jinja2's argument names and defaults, plus
/// transformers' <c>tojson</c> (no HTML escaping, <c>ensure_ascii=False</c>, <c>indent</c>, <c>separators</c>, <c>sort_keys</c>).
/// </summary>
internal static partial class Filters
{
    /// <summary>The filters by name.</summary>
    public static readonly Dictionary<string, FilterFunction> ByName = new(StringComparer.Ordinal)
    {
        ["abs"] = static (_, v, _) => v switch
        {
            long l => l == long.MinValue ? throw ChatTemplateException.Runtime("OverflowError: integer overflow") : (object)Math.Abs(l),
            double d => Math.Abs(d),
            bool b => b ? 1L : 0L,
            _ => throw ChatTemplateException.Runtime($"TypeError: bad operand type for abs(): '{PyFormat.TypeName(v)}'"),
        },
        ["attr"] = static (_, v, a) => PyOps.GetAttribute(v, PyFormat.Str(a.Required(0, "name", "attr"))),
        ["batch"] = Batch,
        ["capitalize"] = static (_, v, _) => PyString.Capitalize(PyFormat.Str(v)),
        ["center"] = static (_, v, a) => PyString.Center(PyFormat.Str(v), PyOps.ToWidth(a.Get(0, "width", 80L))),
        ["count"] = static (_, v, _) => PyOps.Length(v),
        ["length"] = static (_, v, _) => PyOps.Length(v),
        ["default"] = Default,
        ["d"] = Default,
        ["dictsort"] = DictSort,
        ["escape"] = static (_, v, _) => Escape(v),
        ["e"] = static (_, v, _) => Escape(v),
        ["forceescape"] = static (_, v, _) => Escape(v),
        ["first"] = static (_, v, _) => First(v),
        ["last"] = static (_, v, _) => Last(v),
        ["float"] = static (_, v, a) => ToFloat(v, a.Get(0, "default", 0.0)),
        ["int"] = static (_, v, a) => ToInt(v, a.Get(0, "default", 0L), PyOps.ToLong(a.Get(1, "base", 10L))),
        ["format"] = static (_, v, a) => PrintfFormat.Format(PyFormat.Str(v), a.Names.Length > 0 ? NamedAsDict(a) : new PyList([.. a.Positional], isTuple: true)),
        ["indent"] = Indent,
        ["items"] = static (_, v, _) => v switch
        {
            Undefined => new PyList(),
            PyDict dict => Methods.Items(dict),
            _ => throw ChatTemplateException.Runtime("TypeError: Can only get item pairs from a mapping."),
        },
        ["join"] = Join,
        ["list"] = static (_, v, _) => new PyList([.. PyOps.Iterate(v)]),
        ["lower"] = static (_, v, _) => PyFormat.Str(v).ToLowerInvariant(),
        ["upper"] = static (_, v, _) => PyString.Upper(PyFormat.Str(v)),
        ["title"] = static (_, v, _) => JinjaTitle(PyFormat.Str(v)),
        ["trim"] = static (_, v, a) => PyString.Strip(PyFormat.Str(v), a.Get(0, "chars") as string),
        ["string"] = static (_, v, _) => PyFormat.Str(v),
        ["safe"] = static (_, v, _) => PyFormat.Str(v),
        ["pprint"] = static (_, v, _) => PyFormat.Repr(SortDicts(v, 0)),
        ["replace"] = static (_, v, a) => Methods.Replace(
            PyFormat.Str(v),
            PyFormat.Str(a.Required(0, "old", "replace")),
            PyFormat.Str(a.Required(1, "new", "replace")),
            a.Get(2, "count") is { } count ? PyOps.ToLong(count) : -1),
        ["reverse"] = static (_, v, _) => v switch
        {
            string s => string.Concat(Enumerable.Reverse(PyString.CodePoints(s)).Cast<string>()),
            _ => new PyList(Enumerable.Reverse(PyOps.Iterate(v)).ToList()),
        },
        ["round"] = Round,
        ["max"] = static (_, v, a) => MinMax(v, a, max: true),
        ["min"] = static (_, v, a) => MinMax(v, a, max: false),
        ["sum"] = Sum,
        ["sort"] = Sort,
        ["unique"] = Unique,
        ["map"] = Map,
        ["select"] = static (s, v, a) => Select(s, v, a, byAttribute: false, keep: true),
        ["reject"] = static (s, v, a) => Select(s, v, a, byAttribute: false, keep: false),
        ["selectattr"] = static (s, v, a) => Select(s, v, a, byAttribute: true, keep: true),
        ["rejectattr"] = static (s, v, a) => Select(s, v, a, byAttribute: true, keep: false),
        ["groupby"] = GroupBy,
        ["slice"] = SliceFilter,
        ["tojson"] = ToJson,
        ["truncate"] = Truncate,
        ["wordcount"] = static (_, v, _) => (long)WordRegex().Count(PyFormat.Str(v)),
        ["striptags"] = static (_, v, _) => string.Join(' ', PyString.Split(TagRegex().Replace(PyFormat.Str(v), string.Empty), null, -1).Items),
    };

    /// <summary>Looks up an item by Jinja's dotted attribute path (<c>"a.b"</c>, integer parts as indices).</summary>
    public static object? GetPath(object? value, string path)
    {
        foreach (string part in path.Split('.'))
        {
            value = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out long index)
                ? PyOps.GetItem(value, index)
                : PyOps.GetItem(value, part);
        }

        return value;
    }

    /// <summary>A copy with every dict's keys sorted, as <c>pprint.pformat</c> prints them (its line wrapping at 80 columns is not reproduced).</summary>
    private static object? SortDicts(object? value, int depth)
    {
        if (depth > 100)
        {
            throw ChatTemplateException.Limit("value nested too deep to print");
        }

        switch (value)
        {
            case PyList list:
                var items = new List<object?>(list.Count);
                foreach (object? item in list.Items)
                {
                    items.Add(SortDicts(item, depth + 1));
                }

                return new PyList(items, list.IsTuple);
            case PyDict dict:
                var keys = new List<object?>(dict.Count);
                for (int i = 0; i < dict.Count; i++)
                {
                    keys.Add(dict.KeyAt(i));
                }

                keys.Sort(static (x, y) => x is string sx && y is string sy ? string.CompareOrdinal(sx, sy)
                    : PyOps.IsNumber(x) && PyOps.IsNumber(y) ? PyOps.Compare(x, y, "<")
                    : string.CompareOrdinal(PyFormat.TypeName(x), PyFormat.TypeName(y)));
                var sorted = new PyDict(dict.Count);
                foreach (object? key in keys)
                {
                    dict.TryGet(key, out object? item);
                    sorted.Set(key, SortDicts(item, depth + 1));
                }

                return sorted;
            default:
                return value;
        }
    }

    private static object? Default(RenderState state, object? value, CallArgs args)
    {
        object? fallback = args.Get(0, "default_value", string.Empty);
        bool boolean = PyOps.IsTruthy(args.Get(1, "boolean", false));
        return value is Undefined || (boolean && !PyOps.IsTruthy(value)) ? fallback : value;
    }

    private static string Escape(object? value)
    {
        string s = PyFormat.Str(value);
        var sb = new StringBuilder(s.Length);
        foreach (char c in s)
        {
            sb.Append(c switch
            {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&#34;",
                '\'' => "&#39;",
                _ => c.ToString(),
            });
        }

        return sb.ToString();
    }

    private static object? First(object? value)
    {
        List<object?> items = PyOps.Iterate(value);
        return items.Count > 0 ? items[0] : new Undefined("No first item, sequence was empty.");
    }

    private static object? Last(object? value)
    {
        List<object?> items = PyOps.Iterate(value);
        return items.Count > 0 ? items[^1] : new Undefined("No last item, sequence was empty.");
    }

    private static object? ToFloat(object? value, object? fallback)
    {
        switch (value)
        {
            case Undefined u:
                throw u.Fail();
            case double d:
                return d;
            case long or bool:
                return PyOps.ToDouble(value);
            case string s when double.TryParse(PyString.Strip(s).Replace("_", string.Empty, StringComparison.Ordinal), NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed):
                return parsed;
            default:
                return fallback;
        }
    }

    private static object? ToInt(object? value, object? fallback, long numberBase)
    {
        switch (value)
        {
            case Undefined u:
                throw u.Fail();
            case long l:
                return l;
            case bool b:
                return b ? 1L : 0L;
            case double d:
                return double.IsFinite(d) && Math.Abs(d) < 9.2e18 ? (long)Math.Truncate(d) : fallback;
            case string s:
                string text = PyString.Strip(s).Replace("_", string.Empty, StringComparison.Ordinal);
                try
                {
                    if (numberBase == 10 && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long parsed))
                    {
                        return parsed;
                    }

                    if (numberBase != 10 && text.Length > 0)
                    {
                        return Convert.ToInt64(StripBasePrefix(text, numberBase), (int)numberBase);
                    }
                }
                catch (Exception ex) when (ex is FormatException or ArgumentException or OverflowException)
                {
                    return fallback;
                }

                return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double asFloat) && Math.Abs(asFloat) < 9.2e18
                    ? (long)Math.Truncate(asFloat)
                    : fallback;
            default:
                return fallback;
        }
    }

    private static string StripBasePrefix(string text, long numberBase)
    {
        string lower = text.ToLowerInvariant();
        return (numberBase, lower.Length > 2 ? lower[..2] : lower) switch
        {
            (16, "0x") or (8, "0o") or (2, "0b") => text[2..],
            _ => text,
        };
    }

    private static PyDict NamedAsDict(CallArgs args)
    {
        var dict = new PyDict();
        for (int i = 0; i < args.Names.Length; i++)
        {
            dict.Set(args.Names[i], args.NamedValues[i]);
        }

        return dict;
    }

    private static object? Indent(RenderState state, object? value, CallArgs args)
    {
        object? width = args.Get(0, "width", 4L);
        bool first = PyOps.IsTruthy(args.Get(1, "first", false));
        bool blank = PyOps.IsTruthy(args.Get(2, "blank", false));
        string indent = width is string w ? w : new string(' ', PyOps.ToWidth(width));
        // Jinja2 does `s += "\n"` on the value as given: only strings work.
        string s = value switch
        {
            string text => text + "\n",
            Undefined u => throw u.Fail(),
            _ => throw ChatTemplateException.Runtime($"TypeError: unsupported operand type(s) for +=: '{PyFormat.TypeName(value)}' and 'str'"),
        };
        List<object?> lines = ((PyList)Methods.Call(state, s, "splitlines", CallArgs.Empty)!).Items;
        var sb = new StringBuilder();
        for (int i = 0; i < lines.Count; i++)
        {
            string line = (string)lines[i]!;
            if (i > 0)
            {
                sb.Append('\n');
                if (blank || line.Length > 0)
                {
                    sb.Append(indent);
                }
            }
            else if (first)
            {
                sb.Append(indent);
            }

            sb.Append(line);
        }

        return sb.ToString();
    }

    private static object? Join(RenderState state, object? value, CallArgs args)
    {
        string separator = PyFormat.Str(args.Get(0, "d", string.Empty));
        object? attribute = args.Get(1, "attribute");
        var sb = new StringBuilder();
        List<object?> items = PyOps.Iterate(value);
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(separator);
            }

            object? item = attribute is null ? items[i] : GetPath(items[i], PyFormat.Str(attribute));
            sb.Append(PyFormat.Str(item));
        }

        return sb.ToString();
    }

    /// <summary>Jinja's <c>title</c> filter: words start after whitespace and <c>-({[&lt;</c>.</summary>
    private static string JinjaTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (string item in TitleSplitRegex().Split(s))
        {
            if (item.Length > 0)
            {
                sb.Append(char.ToUpperInvariant(item[0])).Append(item[1..].ToLowerInvariant());
            }
        }

        return sb.ToString();
    }

    private static object? Round(RenderState state, object? value, CallArgs args)
    {
        int precision = (int)Math.Clamp(PyOps.ToLong(args.Get(0, "precision", 0L)), -400, 400);
        string method = PyFormat.Str(args.Get(1, "method", "common"));
        double x = PyOps.ToDouble(value);
        double factor = Math.Pow(10, precision);
        return method switch
        {
            "common" => value is long or bool && precision >= 0 ? PyOps.ToLong(value) : (object)Math.Round(x, Math.Clamp(precision, 0, 15), MidpointRounding.ToEven),
            "ceil" => Math.Ceiling(x * factor) / factor,
            "floor" => Math.Floor(x * factor) / factor,
            _ => throw ChatTemplateException.Runtime("FilterArgumentError: method must be common, ceil or floor"),
        };
    }

    private static object? ToJson(RenderState state, object? value, CallArgs args)
    {
        // transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
        object? indent = args.Get(1, "indent");

        string? indentText = indent switch
        {
            null => null,
            string s => s,
            _ => new string(' ', PyOps.ToWidth(indent)),
        };
        string? itemSeparator = null;
        string? keySeparator = null;
        if (args.Get(2, "separators") is { } separators)
        {
            List<object?> pair = PyOps.Iterate(separators);
            if (pair.Count != 2 || pair[0] is not string item || pair[1] is not string key)
            {
                throw ChatTemplateException.Runtime("ValueError: separators must be a pair of strings");
            }

            itemSeparator = item;
            keySeparator = key;
        }

        return PyJson.Dumps(
            value,
            indentText,
            itemSeparator,
            keySeparator,
            PyOps.IsTruthy(args.Get(3, "sort_keys", false)),
            PyOps.IsTruthy(args.Get(0, "ensure_ascii", false)));
    }

    private static object? Truncate(RenderState state, object? value, CallArgs args)
    {
        if (value is Undefined)
        {
            return value;
        }

        int length = PyOps.ToWidth(args.Get(0, "length", 255L));
        bool killWords = PyOps.IsTruthy(args.Get(1, "killwords", false));
        string end = PyFormat.Str(args.Get(2, "end", "..."));
        int leeway = PyOps.ToWidth(args.Get(3, "leeway", 5L));

        // Jinja2 measures the value as given (a short list comes back unchanged) and only cuts strings.
        if (PyOps.Length(value) <= (long)length + leeway)
        {
            return value;
        }

        string s = value as string ?? throw ChatTemplateException.Runtime($"TypeError: can only truncate a string, not '{PyFormat.TypeName(value)}'");

        if (killWords)
        {
            return s[..Math.Max(0, length - end.Length)] + end;
        }

        string cut = s[..Math.Max(0, length - end.Length)];
        int space = cut.LastIndexOf(' ');
        return (space >= 0 ? cut[..space] : cut) + end;
    }

    [GeneratedRegex(@"\w+")]
    private static partial Regex WordRegex();

    [GeneratedRegex(@"([-\s({\[<]+)")]
    private static partial Regex TitleSplitRegex();

    [GeneratedRegex(@"(<!--.*?-->|<[^>]*>)", RegexOptions.Singleline)]
    private static partial Regex TagRegex();
}
