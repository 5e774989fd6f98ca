// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>Python's arithmetic operators: <c>+ - * / // % **</c>, unary minus, and Jinja's <c>~</c>.</summary>
internal static partial class PyOps
{
    /// <summary>The longest string or list an operator may build (guards <c>'x' * 10**12</c>).</summary>
    public const int MaxBuiltLength = 64 * 1024 * 1024;

    /// <summary>Python <c>a + b</c>.</summary>
    public static object? Add(object? a, object? b)
    {
        FailIfUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            return a is double || b is double ? ToDouble(a) + ToDouble(b) : LongOp(ToLong(a), ToLong(b), '+');
        }

        switch (a)
        {
            case string sa when b is string sb:
                CheckLength((long)sa.Length + sb.Length);
                return string.Concat(sa, sb);
            case string:
                throw ChatTemplateException.Runtime($"TypeError: can only concatenate str (not \"{PyFormat.TypeName(b)}\") to str");
            case PyList la when b is PyList lb && la.IsTuple == lb.IsTuple:
                CheckLength((long)la.Count + lb.Count);
                var items = new List<object?>(la.Count + lb.Count);
                items.AddRange(la.Items);
                items.AddRange(lb.Items);
                return new PyList(items, la.IsTuple);
            case PyList la:
                string type = la.IsTuple ? "tuple" : "list";
                throw ChatTemplateException.Runtime($"TypeError: can only concatenate {type} (not \"{PyFormat.TypeName(b)}\") to {type}");
            default:
                throw Unsupported("+", a, b);
        }
    }

    /// <summary>Python <c>a - b</c>.</summary>
    public static object? Subtract(object? a, object? b)
    {
        FailIfUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            return a is double || b is double ? ToDouble(a) - ToDouble(b) : LongOp(ToLong(a), ToLong(b), '-');
        }

        throw Unsupported("-", a, b);
    }

    /// <summary>Python <c>a * b</c>, including string and list repetition.</summary>
    public static object? Multiply(object? a, object? b)
    {
        FailIfUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            return a is double || b is double ? ToDouble(a) * ToDouble(b) : LongOp(ToLong(a), ToLong(b), '*');
        }

        if ((a is string or PyList) && b is long or bool)
        {
            return Repeat(a!, ToLong(b));
        }

        if ((b is string or PyList) && a is long or bool)
        {
            return Repeat(b!, ToLong(a));
        }

        throw Unsupported("*", a, b);
    }

    /// <summary>Python <c>a / b</c> (true division: always a float).</summary>
    public static object? Divide(object? a, object? b)
    {
        FailIfUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            double y = ToDouble(b);
            return y == 0 ? throw ChatTemplateException.Runtime("ZeroDivisionError: division by zero") : ToDouble(a) / y;
        }

        throw Unsupported("/", a, b);
    }

    /// <summary>Python <c>a // b</c> (floor division).</summary>
    public static object? FloorDivide(object? a, object? b)
    {
        FailIfUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double)
            {
                double y = ToDouble(b);
                return y == 0 ? throw ChatTemplateException.Runtime("ZeroDivisionError: float floor division by zero") : Math.Floor(ToDouble(a) / y);
            }

            long x = ToLong(a);
            long d = ToLong(b);
            if (d == 0)
            {
                throw ChatTemplateException.Runtime("ZeroDivisionError: integer division or modulo by zero");
            }

            long q = x / d;
            return (x % d != 0) && ((x < 0) != (d < 0)) ? q - 1 : q;
        }

        throw Unsupported("//", a, b);
    }

    /// <summary>Python <c>a % b</c>: modulo with the divisor's sign, or printf-style string formatting.</summary>
    public static object? Modulo(object? a, object? b)
    {
        FailIfUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double)
            {
                double y = ToDouble(b);
                if (y == 0)
                {
                    throw ChatTemplateException.Runtime("ZeroDivisionError: float modulo");
                }

                double r = ToDouble(a) % y;
                return r != 0 && (r < 0) != (y < 0) ? r + y : r;
            }

            long x = ToLong(a);
            long d = ToLong(b);
            if (d == 0)
            {
                throw ChatTemplateException.Runtime("ZeroDivisionError: integer division or modulo by zero");
            }

            long m = x % d;
            return m != 0 && (m < 0) != (d < 0) ? m + d : m;
        }

        if (a is string format)
        {
            return PrintfFormat.Format(format, b);
        }

        throw Unsupported("%", a, b);
    }

    /// <summary>Python <c>a ** b</c>.</summary>
    public static object? Power(object? a, object? b)
    {
        FailIfUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double || ToLong(b) < 0)
            {
                double baseValue = ToDouble(a);
                double exponent = ToDouble(b);
                if (baseValue == 0 && exponent < 0)
                {
                    throw ChatTemplateException.Runtime("ZeroDivisionError: 0.0 cannot be raised to a negative power");
                }

                double power = Math.Pow(baseValue, exponent);
                if (double.IsInfinity(power) && double.IsFinite(baseValue) && double.IsFinite(exponent))
                {
                    throw ChatTemplateException.Runtime("OverflowError: (34, 'Numerical result out of range')");
                }

                return power;
            }

            long x = ToLong(a);
            long n = ToLong(b);
            long result = 1;
            long factor = x;
            long e = n;
            while (e > 0)
            {
                if ((e & 1) != 0)
                {
                    result = (long)LongOp(result, factor, '*');
                }

                e >>= 1;
                if (e > 0)
                {
                    factor = (long)LongOp(factor, factor, '*');
                }
            }

            return result;
        }

        throw Unsupported("**", a, b);
    }

    /// <summary>Python unary <c>-a</c>.</summary>
    public static object? Negate(object? a) => a switch
    {
        Undefined u => throw u.Fail(),
        double d => -d,
        long or bool => LongOp(0, ToLong(a), '-'),
        _ => throw ChatTemplateException.Runtime($"TypeError: bad operand type for unary -: '{PyFormat.TypeName(a)}'"),
    };

    /// <summary>Python unary <c>+a</c>.</summary>
    public static object? Plus(object? a) => a switch
    {
        Undefined u => throw u.Fail(),
        double or long => a,
        bool b => b ? 1L : 0L,
        _ => throw ChatTemplateException.Runtime($"TypeError: bad operand type for unary +: '{PyFormat.TypeName(a)}'"),
    };

    /// <summary>Jinja's <c>a ~ b</c>: both converted with <c>str()</c> (undefined as empty) and joined.</summary>
    public static string Concat(object? a, object? b)
    {
        string sa = PyFormat.Str(a);
        string sb = PyFormat.Str(b);
        CheckLength((long)sa.Length + sb.Length);
        return string.Concat(sa, sb);
    }

    /// <summary>Raises when a built value would exceed <see cref="MaxBuiltLength"/>.</summary>
    public static void CheckLength(long length)
    {
        if (length > MaxBuiltLength)
        {
            throw ChatTemplateException.Limit($"a string or list of {length} elements exceeds the limit of {MaxBuiltLength}");
        }
    }

    private static object Repeat(object sequence, long times)
    {
        if (times <= 0)
        {
            return sequence is string ? string.Empty : new PyList([], ((PyList)sequence).IsTuple);
        }

        if (sequence is string s)
        {
            CheckLength(s.Length * times);
            var sb = new System.Text.StringBuilder((int)(s.Length * times));
            for (long i = 0; i < times; i++)
            {
                sb.Append(s);
            }

            return sb.ToString();
        }

        var list = (PyList)sequence;
        CheckLength(list.Count * times);
        var items = new List<object?>((int)(list.Count * times));
        for (long i = 0; i < times; i++)
        {
            items.AddRange(list.Items);
        }

        return new PyList(items, list.IsTuple);
    }

    private static void FailIfUndefined(object? a, object? b)
    {
        if (a is Undefined ua)
        {
            throw ua.Fail();
        }

        if (b is Undefined ub)
        {
            throw ub.Fail();
        }
    }

    private static object LongOp(long x, long y, char op)
    {
        try
        {
            return op switch
            {
                '+' => checked(x + y),
                '-' => checked(x - y),
                _ => checked(x * y),
            };
        }
        catch (OverflowException)
        {
            throw ChatTemplateException.Runtime("OverflowError: integer result does not fit in 64 bits (arbitrary-precision integers are not supported)");
        }
    }

    private static ChatTemplateException Unsupported(string op, object? a, object? b)
        => ChatTemplateException.Runtime($"TypeError: unsupported operand type(s) for {op}: '{PyFormat.TypeName(a)}' and '{PyFormat.TypeName(b)}'");
}
