// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>
/// Attribute and item access as Jinja2's immutable sandbox does it: <c>obj.name</c> tries the Python attribute
/// (a method) then the item, <c>obj[key]</c> the item then the attribute; a miss is <see cref="Undefined"/>;
/// methods that mutate lists and dicts are refused.
/// </summary>
internal static partial class PyOps
{
    /// <summary><c>obj.name</c>.</summary>
    public static object? GetAttribute(object? obj, string name)
    {
        switch (obj)
        {
            case Undefined u:
                throw u.Fail();
            case PyDict dict:
                if (Methods.IsMethod(dict, name))
                {
                    return Methods.Bind(dict, name);
                }

                return dict.TryGet(name, out object? value) ? value : Undefined.ForAttribute(obj, name);
            case Namespace ns:
                return ns.Attributes.TryGet(name, out object? attr) ? attr : Undefined.ForAttribute(obj, name);
            case LoopContext loop:
                return loop.TryGetAttribute(name, out object? loopValue) ? loopValue : Undefined.ForAttribute(obj, name);
            case string or PyList:
                return Methods.IsMethod(obj, name) ? Methods.Bind(obj, name) : Undefined.ForAttribute(obj, name);
            default:
                return Undefined.ForAttribute(obj, name);
        }
    }

    /// <summary><c>obj[key]</c>.</summary>
    public static object? GetItem(object? obj, object? key)
    {
        switch (obj)
        {
            case Undefined u:
                throw u.Fail();
            case PyDict dict:
                if (dict.TryGet(key, out object? value))
                {
                    return value;
                }

                break;
            case PyList list when key is long or bool:
                long index = ToLong(key);
                if (index < 0)
                {
                    index += list.Count;
                }

                return index >= 0 && index < list.Count ? list[(int)index] : Undefined.ForAttribute(obj, key);
            case string s when key is long or bool:
                long position = ToLong(key);
                if (!PyString.HasSurrogates(s))
                {
                    if (position < 0)
                    {
                        position += s.Length;
                    }

                    return position >= 0 && position < s.Length ? s[(int)position].ToString() : Undefined.ForAttribute(obj, key);
                }

                List<object?> points = PyString.CodePoints(s);
                if (position < 0)
                {
                    position += points.Count;
                }

                return position >= 0 && position < points.Count ? points[(int)position] : Undefined.ForAttribute(obj, key);
        }

        return key is string name ? GetAttribute(obj, name) : Undefined.ForAttribute(obj, key);
    }

    /// <summary><c>obj[start:stop:step]</c> on a string, list or tuple.</summary>
    public static object? Slice(object? obj, object? start, object? stop, object? step)
    {
        if (obj is Undefined u)
        {
            throw u.Fail();
        }

        long stepValue = SliceBound(step) ?? 1;
        if (stepValue == 0)
        {
            throw ChatTemplateException.Runtime("ValueError: slice step cannot be zero");
        }

        List<object?> items;
        bool isString = false;
        switch (obj)
        {
            case PyList list:
                items = list.Items;
                break;
            case string s:
                if (!PyString.HasSurrogates(s) && stepValue == 1)
                {
                    (long from, long to) = SliceIndices(s.Length, SliceBound(start), SliceBound(stop), 1);
                    return to > from ? s.Substring((int)from, (int)(to - from)) : string.Empty;
                }

                items = PyString.CodePoints(s);
                isString = true;
                break;
            case PyDict:
                // Jinja2 slices with Python's own subscript (not the sandbox's getitem), so failures raise.
                throw ChatTemplateException.Runtime("TypeError: unhashable type: 'slice'");
            default:
                throw ChatTemplateException.Runtime($"TypeError: '{PyFormat.TypeName(obj)}' object is not subscriptable");
        }

        (long first, long end) = SliceIndices(items.Count, SliceBound(start), SliceBound(stop), stepValue);
        var result = new List<object?>();
        for (long i = first; stepValue > 0 ? i < end : i > end; i += stepValue)
        {
            result.Add(items[(int)i]);
        }

        if (isString)
        {
            return string.Concat(result.Cast<string>());
        }

        return new PyList(result, ((PyList)obj).IsTuple);
    }

    private static long? SliceBound(object? value) => value switch
    {
        null => null,
        long or bool => ToLong(value),
        _ => throw ChatTemplateException.Runtime("TypeError: slice indices must be integers or None or have an __index__ method"),
    };

    /// <summary>Python's <c>slice.indices(length)</c>: clamped start and stop for the step's direction.</summary>
    private static (long Start, long Stop) SliceIndices(long length, long? start, long? stop, long step)
    {
        long lower = step > 0 ? 0 : -1;
        long upper = step > 0 ? length : length - 1;
        return (Clamp(start, step < 0 ? upper : lower), Clamp(stop, step < 0 ? lower : upper));

        long Clamp(long? bound, long fallback)
        {
            if (bound is not long b)
            {
                return fallback;
            }

            if (b < 0)
            {
                b += length;
                return b < lower ? lower : b;
            }

            return b > upper ? upper : b;
        }
    }
}
