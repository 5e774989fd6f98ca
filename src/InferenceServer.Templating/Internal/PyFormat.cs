// Licensed under the MIT License. See LICENSE in the repository root.

using System.Globalization;
using System.Text;

namespace InferenceServer.Templating.Internal;

/// <summary>Python's <c>str()</c> and <c>repr()</c> of template values: <c>True</c>, <c>None</c>, <c>1.0</c>, <c>['a', 'b']</c>, <c>{'a': 1}</c>.</summary>
internal static class PyFormat
{
    /// <summary><c>str(value)</c>, which is what <c>{{ value }}</c> prints.</summary>
    public static string Str(object? value) => value switch
    {
        string s => s,
        null => "None",
        Undefined => string.Empty,
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        _ => Repr(value),
    };

    /// <summary><c>repr(value)</c>.</summary>
    public static string Repr(object? value)
    {
        if (value is string or PyList or PyDict)
        {
            var sb = new StringBuilder();
            AppendRepr(sb, value, 0);
            return sb.ToString();
        }

        return value switch
        {
            Undefined => "Undefined",
            Namespace ns => "<Namespace " + Repr(ns.Attributes) + ">",
            LoopContext loop => $"<LoopContext {loop.Index0 + 1}/{loop.Length}>",
            Macro macro => $"<Macro '{macro.Name}'>",
            BoundMethod method => $"<built-in method {method.Name} of {TypeName(method.Target)} object>",
            ICallable callable => $"<function {callable.Name}>",
            _ => Str(value),
        };
    }

    /// <summary>The Python type name used in error messages (<c>str</c>, <c>int</c>, <c>dict</c>, <c>NoneType</c>...).</summary>
    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        string => "str",
        bool => "bool",
        long => "int",
        double => "float",
        PyList { IsTuple: true } => "tuple",
        PyList => "list",
        PyDict => "dict",
        Undefined => "Undefined",
        Namespace => "Namespace",
        LoopContext => "LoopContext",
        Macro => "Macro",
        BoundMethod => "builtin_function_or_method",
        _ => "function",
    };

    /// <summary>Python's <c>repr(float)</c>: shortest round-trip digits, <c>1.0</c>, <c>1e+16</c>, <c>1.5e-05</c>, <c>inf</c>, <c>nan</c>.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }

        if (d == 0)
        {
            return double.IsNegative(d) ? "-0.0" : "0.0";
        }

        // "R" gives the shortest round-trip digits, as Python's repr does; only the layout differs.
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        bool negative = r[0] == '-';
        if (negative)
        {
            r = r[1..];
        }

        int exponent = 0;
        int e = r.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(r.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            r = r[..e];
        }

        int dot = r.IndexOf('.', StringComparison.Ordinal);
        string digits = dot >= 0 ? r[..dot] + r[(dot + 1)..] : r;
        int pointPos = (dot >= 0 ? dot : r.Length) + exponent;
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0')
        {
            lead++;
        }

        digits = digits[lead..];
        pointPos -= lead;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0)
        {
            digits = "0";
        }

        var sb = new StringBuilder();
        if (negative)
        {
            sb.Append('-');
        }

        // pointPos: the value is 0.DIGITS * 10^pointPos. Python switches to exponent form outside -4 < pointPos <= 16.
        if (pointPos > -4 && pointPos <= 16)
        {
            if (pointPos <= 0)
            {
                sb.Append("0.").Append('0', -pointPos).Append(digits);
            }
            else if (pointPos >= digits.Length)
            {
                sb.Append(digits).Append('0', pointPos - digits.Length).Append(".0");
            }
            else
            {
                sb.Append(digits, 0, pointPos).Append('.').Append(digits, pointPos, digits.Length - pointPos);
            }
        }
        else
        {
            sb.Append(digits[0]);
            if (digits.Length > 1)
            {
                sb.Append('.').Append(digits, 1, digits.Length - 1);
            }

            int exp = pointPos - 1;
            sb.Append('e').Append(exp < 0 ? '-' : '+').Append(Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture));
        }

        return sb.ToString();
    }

    private static void AppendRepr(StringBuilder sb, object? value, int depth)
    {
        if (depth > 100)
        {
            throw ChatTemplateException.Limit("value nested too deep to print");
        }

        switch (value)
        {
            case string s:
                AppendStringRepr(sb, s);
                break;
            case PyList list:
                sb.Append(list.IsTuple ? '(' : '[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(", ");
                    }

                    AppendRepr(sb, list[i], depth + 1);
                }

                if (list.IsTuple && list.Count == 1)
                {
                    sb.Append(',');
                }

                sb.Append(list.IsTuple ? ')' : ']');
                break;
            case PyDict dict:
                sb.Append('{');
                for (int i = 0; i < dict.Count; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(", ");
                    }

                    AppendRepr(sb, dict.KeyAt(i), depth + 1);
                    sb.Append(": ");
                    AppendRepr(sb, dict.ValueAt(i), depth + 1);
                }

                sb.Append('}');
                break;
            default:
                sb.Append(Repr(value));
                break;
        }
    }

    /// <summary>Python's string repr: single quotes unless the text has <c>'</c> and no <c>"</c>; non-printables escaped.</summary>
    private static void AppendStringRepr(StringBuilder sb, string s)
    {
        char quote = s.Contains('\'', StringComparison.Ordinal) && !s.Contains('"', StringComparison.Ordinal) ? '"' : '\'';
        sb.Append(quote);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == quote || c == '\\')
            {
                sb.Append('\\').Append(c);
            }
            else if (c == '\n')
            {
                sb.Append("\\n");
            }
            else if (c == '\r')
            {
                sb.Append("\\r");
            }
            else if (c == '\t')
            {
                sb.Append("\\t");
            }
            else if (c >= ' ' && c < 0x7f)
            {
                sb.Append(c);
            }
            else
            {
                int codePoint = c;
                int width = 1;
                if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                {
                    codePoint = char.ConvertToUtf32(c, s[i + 1]);
                    width = 2;
                }

                if (IsPrintable(codePoint))
                {
                    sb.Append(s, i, width);
                }
                else if (codePoint < 0x100)
                {
                    sb.Append("\\x").Append(codePoint.ToString("x2", CultureInfo.InvariantCulture));
                }
                else if (codePoint < 0x10000)
                {
                    sb.Append("\\u").Append(codePoint.ToString("x4", CultureInfo.InvariantCulture));
                }
                else
                {
                    sb.Append("\\U").Append(codePoint.ToString("x8", CultureInfo.InvariantCulture));
                }

                i += width - 1;
            }
        }

        sb.Append(quote);
    }

    private static bool IsPrintable(int codePoint)
    {
        if (codePoint == ' ')
        {
            return true;
        }

        UnicodeCategory category = CharUnicodeInfo.GetUnicodeCategory(codePoint);
        return category is not (UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator
            or UnicodeCategory.ParagraphSeparator or UnicodeCategory.SpaceSeparator);
    }
}
