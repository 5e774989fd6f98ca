// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>
/// Python semantics of the operations templates perform on values: truthiness, equality across types
/// (<c>1 == 1.0 == True</c>), ordering, arithmetic, membership, length and iteration. Errors are raised as Python's
/// would be (<c>TypeError: can only concatenate str (not "dict") to str</c>).
/// </summary>
internal static partial class PyOps
{
    /// <summary>Python truthiness (<c>bool(value)</c>); undefined is false.</summary>
    public static bool IsTruthy(object? value) => value switch
    {
        null => false,
        bool b => b,
        string s => s.Length > 0,
        long l => l != 0,
        double d => d != 0,
        PyList list => list.Count > 0,
        PyDict dict => dict.Count > 0,
        Undefined => false,
        _ => true,
    };

    /// <summary>Whether the value is a Python number (bool counts, as <c>isinstance(True, Number)</c>).</summary>
    public static bool IsNumber(object? value) => value is long or double or bool;

    /// <summary>Python <c>==</c>.</summary>
    public static bool AreEqual(object? a, object? b)
    {
        if (ReferenceEquals(a, b))
        {
            return true;
        }

        switch (a)
        {
            case null:
                return false;
            case string sa:
                return b is string sb && string.Equals(sa, sb, StringComparison.Ordinal);
            case long or double or bool:
                if (!IsNumber(b))
                {
                    return false;
                }

                if (a is double || b is double)
                {
                    return ToDouble(a) == ToDouble(b);
                }

                return ToLong(a) == ToLong(b);
            case PyList la:
                if (b is not PyList lb || la.IsTuple != lb.IsTuple || la.Count != lb.Count)
                {
                    return false;
                }

                for (int i = 0; i < la.Count; i++)
                {
                    if (!AreEqual(la[i], lb[i]))
                    {
                        return false;
                    }
                }

                return true;
            case PyDict da:
                if (b is not PyDict db || da.Count != db.Count)
                {
                    return false;
                }

                for (int i = 0; i < da.Count; i++)
                {
                    if (!db.TryGet(da.KeyAt(i), out object? other) || !AreEqual(da.ValueAt(i), other))
                    {
                        return false;
                    }
                }

                return true;
            case Undefined:
                return b is Undefined;
            default:
                return false;
        }
    }

    /// <summary>Python ordering: negative, zero or positive; raises for types Python cannot order.</summary>
    public static int Compare(object? a, object? b, string op)
    {
        if (a is Undefined ua)
        {
            throw ua.Fail();
        }

        if (b is Undefined ub)
        {
            throw ub.Fail();
        }

        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double)
            {
                double x = ToDouble(a);
                double y = ToDouble(b);
                return x < y ? -1 : x > y ? 1 : 0;
            }

            return ToLong(a).CompareTo(ToLong(b));
        }

        if (a is string sa && b is string sb)
        {
            return Math.Sign(string.CompareOrdinal(sa, sb));
        }

        if (a is PyList la && b is PyList lb && la.IsTuple == lb.IsTuple)
        {
            int n = Math.Min(la.Count, lb.Count);
            for (int i = 0; i < n; i++)
            {
                if (!AreEqual(la[i], lb[i]))
                {
                    return Compare(la[i], lb[i], op);
                }
            }

            return la.Count.CompareTo(lb.Count);
        }

        throw ChatTemplateException.Runtime($"TypeError: '{op}' not supported between instances of '{PyFormat.TypeName(a)}' and '{PyFormat.TypeName(b)}'");
    }

    /// <summary>Python <c>needle in haystack</c>.</summary>
    public static bool Contains(object? haystack, object? needle)
    {
        switch (haystack)
        {
            case string s:
                if (needle is string sub)
                {
                    return s.Contains(sub, StringComparison.Ordinal);
                }

                throw ChatTemplateException.Runtime($"TypeError: 'in <string>' requires string as left operand, not {PyFormat.TypeName(needle)}");
            case PyList list:
                foreach (object? item in list.Items)
                {
                    if (AreEqual(item, needle))
                    {
                        return true;
                    }
                }

                return false;
            case PyDict dict:
                ThrowIfUnhashable(needle);
                return dict.ContainsKey(needle);
            case Namespace ns:
                return ns.Attributes.ContainsKey(needle);
            case Undefined:
                return false;
            default:
                throw ChatTemplateException.Runtime($"TypeError: argument of type '{PyFormat.TypeName(haystack)}' is not iterable");
        }
    }

    /// <summary>Raises Python's <c>TypeError: unhashable type</c> for values that cannot be dict keys.</summary>
    public static void ThrowIfUnhashable(object? value)
    {
        if (value is PyDict or PyList { IsTuple: false } or Namespace or LoopContext)
        {
            throw ChatTemplateException.Runtime($"TypeError: unhashable type: '{PyFormat.TypeName(value)}'");
        }
    }

    /// <summary>Python <c>len(value)</c>; undefined has length 0.</summary>
    public static long Length(object? value) => value switch
    {
        string s => PyString.Length(s),
        PyList list => list.Count,
        PyDict dict => dict.Count,
        Undefined => 0,
        LoopContext loop => loop.Length,
        _ => throw ChatTemplateException.Runtime($"TypeError: object of type '{PyFormat.TypeName(value)}' has no len()"),
    };

    /// <summary>The items iterating <paramref name="value"/> yields: list elements, dict keys, string code points; none for undefined.</summary>
    public static List<object?> Iterate(object? value)
    {
        switch (value)
        {
            case PyList list:
                return list.Items;
            case PyDict dict:
                var keys = new List<object?>(dict.Count);
                for (int i = 0; i < dict.Count; i++)
                {
                    keys.Add(dict.KeyAt(i));
                }

                return keys;
            case string s:
                return PyString.CodePoints(s);
            case Undefined:
                return [];
            default:
                throw ChatTemplateException.Runtime($"TypeError: '{PyFormat.TypeName(value)}' object is not iterable");
        }
    }

    /// <summary>A width or count argument (padding, indentation, batch size): negative is 0, beyond <see cref="MaxBuiltLength"/> is refused.</summary>
    public static int ToWidth(object? value)
    {
        long width = ToLong(value);
        CheckLength(width);
        return width < 0 ? 0 : (int)width;
    }

    /// <summary>The value as a double (for numbers and bools).</summary>
    public static double ToDouble(object? value) => value switch
    {
        double d => d,
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw ChatTemplateException.Runtime($"TypeError: must be real number, not {PyFormat.TypeName(value)}"),
    };

    /// <summary>The value as a long (for ints and bools).</summary>
    public static long ToLong(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw ChatTemplateException.Runtime($"TypeError: '{PyFormat.TypeName(value)}' object cannot be interpreted as an integer"),
    };
}
