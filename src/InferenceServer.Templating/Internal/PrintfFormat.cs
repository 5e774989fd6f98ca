// Licensed under the MIT License. See LICENSE in the repository root.

using System.Globalization;
using System.Text;

namespace InferenceServer.Templating.Internal;

/// <summary>Python's printf-style <c>format % values</c> (also the <c>format</c> filter): <c>%s %r %d %i %f %e %g %x %o %c %%</c>, flags, width, precision, <c>%(name)s</c>.</summary>
internal static class PrintfFormat
{
    /// <summary>Formats <paramref name="format"/> with <paramref name="values"/> (a tuple, a dict for named fields, or one value).</summary>
    public static string Format(string format, object? values)
    {
        List<object?> positional = values is PyList { IsTuple: true } tuple ? tuple.Items : [values];
        var sb = new StringBuilder();
        int next = 0;
        int i = 0;
        while (i < format.Length)
        {
            char c = format[i++];
            if (c != '%')
            {
                sb.Append(c);
                continue;
            }

            if (i >= format.Length)
            {
                throw ChatTemplateException.Runtime("ValueError: incomplete format");
            }

            object? value;
            bool named = false;
            if (format[i] == '(')
            {
                int close = format.IndexOf(')', i);
                if (close < 0 || values is not PyDict mapping)
                {
                    throw ChatTemplateException.Runtime("TypeError: format requires a mapping");
                }

                string key = format[(i + 1)..close];
                value = mapping.TryGet(key, out object? v) ? v : throw ChatTemplateException.Runtime($"KeyError: {PyFormat.Repr(key)}");
                named = true;
                i = close + 1;
            }
            else
            {
                value = null;
            }

            string flags = string.Empty;
            while (i < format.Length && "-+ #0".Contains(format[i], StringComparison.Ordinal))
            {
                flags += format[i++];
            }

            int width = ReadNumber(format, ref i);
            int precision = -1;
            if (i < format.Length && format[i] == '.')
            {
                i++;
                precision = Math.Max(0, ReadNumber(format, ref i));
            }

            if (i >= format.Length)
            {
                throw ChatTemplateException.Runtime("ValueError: incomplete format");
            }

            char type = format[i++];
            if (type == '%')
            {
                sb.Append('%');
                continue;
            }

            if (!named)
            {
                if (next >= positional.Count)
                {
                    throw ChatTemplateException.Runtime("TypeError: not enough arguments for format string");
                }

                value = positional[next++];
            }

            string text = Convert(type, value, precision, flags);
            bool numeric = type is not ('s' or 'r' or 'c');
            if (width > text.Length)
            {
                if (flags.Contains('-', StringComparison.Ordinal))
                {
                    text = text.PadRight(width);
                }
                else if (numeric && flags.Contains('0', StringComparison.Ordinal))
                {
                    bool signed = text.Length > 0 && (text[0] == '-' || text[0] == '+' || text[0] == ' ');
                    text = signed ? text[0] + text[1..].PadLeft(width - 1, '0') : text.PadLeft(width, '0');
                }
                else
                {
                    text = text.PadLeft(width);
                }
            }

            sb.Append(text);
        }

        // Python skips this check when the argument is subscriptable but not a tuple (a dict, a list).
        if (values is not (PyDict or PyList { IsTuple: false }) && next < positional.Count)
        {
            throw ChatTemplateException.Runtime("TypeError: not all arguments converted during string formatting");
        }

        return sb.ToString();
    }

    private static int ReadNumber(string format, ref int i)
    {
        int start = i;
        while (i < format.Length && char.IsAsciiDigit(format[i]))
        {
            i++;
        }

        if (i == start)
        {
            return -1;
        }

        if (!int.TryParse(format.AsSpan(start, i - start), CultureInfo.InvariantCulture, out int value) || value > PyOps.MaxBuiltLength)
        {
            throw ChatTemplateException.Limit("a width or precision in a format string is too large");
        }

        return value;
    }

    private static string Convert(char type, object? value, int precision, string flags)
    {
        string sign = flags.Contains('+', StringComparison.Ordinal) ? "+" : flags.Contains(' ', StringComparison.Ordinal) ? " " : string.Empty;
        switch (type)
        {
            case 's':
                string s = PyFormat.Str(value);
                return precision >= 0 && precision < s.Length ? s[..precision] : s;
            case 'r':
            case 'a':
                return PyFormat.Repr(value);
            case 'c':
                if (value is string { Length: 1 } ch)
                {
                    return ch;
                }

                long codePoint = PyOps.ToLong(value);
                return codePoint is >= 0 and <= 0x10FFFF and not (>= 0xD800 and <= 0xDFFF)
                    ? char.ConvertFromUtf32((int)codePoint)
                    : throw ChatTemplateException.Runtime("OverflowError: %c arg not in range(0x110000)");
            case 'd':
            case 'i':
            case 'u':
                long l = value is double d ? (long)Math.Truncate(d) : NumberOrFail(value);
                return (l >= 0 ? sign : string.Empty) + l.ToString(CultureInfo.InvariantCulture);
            case 'x':
            case 'X':
            case 'o':
                long n = NumberOrFail(value);
                string digits = type == 'o' ? System.Convert.ToString(Math.Abs(n), 8) : Math.Abs(n).ToString(type == 'x' ? "x" : "X", CultureInfo.InvariantCulture);
                return (n < 0 ? "-" : sign) + digits;
            case 'f':
            case 'F':
            case 'e':
            case 'E':
            case 'g':
            case 'G':
                double f = PyOps.ToDouble(value is string ? throw ChatTemplateException.Runtime("TypeError: must be real number, not str") : value);
                int p = precision < 0 ? 6 : precision;
                string body = type switch
                {
                    'f' or 'F' => f.ToString("F" + p.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
                    'e' or 'E' => PythonExponent(f.ToString((type == 'e' ? "e" : "E") + p.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture)),
                    _ => f.ToString("G" + Math.Max(p, 1).ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
                };
                return (f >= 0 ? sign : string.Empty) + body;
            default:
                throw ChatTemplateException.Runtime($"ValueError: unsupported format character '{type}'");
        }
    }

    private static long NumberOrFail(object? value) => value is long or bool
        ? PyOps.ToLong(value)
        : throw ChatTemplateException.Runtime($"TypeError: %d format: a real number is required, not {PyFormat.TypeName(value)}");

    /// <summary>.NET writes <c>1.5e+005</c>; Python writes <c>1.5e+05</c>.</summary>
    private static string PythonExponent(string text)
    {
        int e = text.IndexOfAny(['e', 'E']);
        string exponent = text[(e + 2)..].TrimStart('0');
        return text[..(e + 2)] + exponent.PadLeft(2, '0');
    }
}
