// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>
/// The byte-level automata of JSON strings and numbers, as pure functions of a phase and two integers (no frames), so
/// that the schema compiler can run them over property names ahead of time.
/// </summary>
internal static class ScalarSteps
{
    // UTF-8 continuation ranges (RFC 3629): 0 any, 1 after E0, 2 after ED, 3 after F0, 4 after F4.
    private static ReadOnlySpan<byte> RangeLow => [0x80, 0xA0, 0x80, 0x90, 0x80];

    private static ReadOnlySpan<byte> RangeHigh => [0xBF, 0xBF, 0x9F, 0xBF, 0x8F];

    /// <summary>
    /// Advances a string by one byte. Strings must be valid UTF-8 with no raw control character; <c>\uXXXX</c>
    /// surrogates must pair (a high one then a low one); lengths count code points, an escape as one.
    /// </summary>
    /// <param name="node">The string node (length bounds, whether escapes are allowed).</param>
    /// <param name="phase">The string phase, updated.</param>
    /// <param name="count">Code points so far (capped at <see cref="GrammarNode.CountCap"/>), updated.</param>
    /// <param name="detail">Escape or UTF-8 detail, updated.</param>
    /// <param name="b">The byte.</param>
    /// <returns>Whether the byte was taken, and whether it closed the string.</returns>
    public static StepResult String(GrammarNode node, ref int phase, ref int count, ref int detail, byte b)
    {
        switch (phase)
        {
            case Phases.StringStart:
                if (b != '"')
                {
                    return StepResult.Dead;
                }

                phase = Phases.StringBody;
                return StepResult.Continue;

            case Phases.StringBody:
                if (b == '"')
                {
                    return count >= node.MinLength ? StepResult.Close : StepResult.Dead;
                }

                if (count >= node.MaxLength || b < 0x20)
                {
                    return StepResult.Dead;
                }

                if (b == '\\')
                {
                    if (!node.AllowEscapes)
                    {
                        return StepResult.Dead;
                    }

                    phase = Phases.StringEscape;
                }
                else if (b >= 0x80)
                {
                    int lead = Utf8Lead(b);
                    if (lead < 0)
                    {
                        return StepResult.Dead;
                    }

                    phase = Phases.StringContinuation;
                    detail = lead;
                }

                count = count < node.CountCap ? count + 1 : count;
                return StepResult.Continue;

            case Phases.StringContinuation:
            {
                int range = detail & 7;
                int remaining = detail >> 3;
                if (b < RangeLow[range] || b > RangeHigh[range])
                {
                    return StepResult.Dead;
                }

                remaining--;
                if (remaining == 0)
                {
                    phase = Phases.StringBody;
                    detail = 0;
                }
                else
                {
                    detail = remaining << 3;
                }

                return StepResult.Continue;
            }

            case Phases.StringEscape:
                if (b == 'u')
                {
                    phase = Phases.StringHex0;
                    detail = 0;
                    return StepResult.Continue;
                }

                if (b is (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t')
                {
                    phase = Phases.StringBody;
                    return StepResult.Continue;
                }

                return StepResult.Dead;

            case Phases.StringLowBackslash:
                if (b != '\\')
                {
                    return StepResult.Dead;
                }

                phase = Phases.StringLowU;
                return StepResult.Continue;

            case Phases.StringLowU:
                if (b != 'u')
                {
                    return StepResult.Dead;
                }

                phase = Phases.StringLowHex0;
                detail = 0;
                return StepResult.Continue;

            default:
                return Hex(ref phase, ref detail, b);
        }
    }

    /// <summary>Advances a number by one byte.</summary>
    /// <param name="integerOnly">Whether fraction and exponent are refused.</param>
    /// <param name="phase">The number phase.</param>
    /// <param name="b">The byte.</param>
    /// <returns>The next phase, or -1 when the byte cannot continue the number.</returns>
    public static int Number(bool integerOnly, int phase, byte b)
    {
        bool digit = b is >= (byte)'0' and <= (byte)'9';
        switch (phase)
        {
            case Phases.NumberStart:
                if (b == '-')
                {
                    return Phases.NumberMinus;
                }

                goto case Phases.NumberMinus;
            case Phases.NumberMinus:
                return b == '0' ? Phases.NumberZero : digit ? Phases.NumberInteger : -1;
            case Phases.NumberInteger when digit:
                return Phases.NumberInteger;
            case Phases.NumberInteger:
            case Phases.NumberZero:
                if (integerOnly)
                {
                    return -1;
                }

                return b == '.' ? Phases.NumberDot : b is (byte)'e' or (byte)'E' ? Phases.NumberExponent : -1;
            case Phases.NumberDot:
                return digit ? Phases.NumberFraction : -1;
            case Phases.NumberFraction:
                return digit ? Phases.NumberFraction : b is (byte)'e' or (byte)'E' ? Phases.NumberExponent : -1;
            case Phases.NumberExponent:
                return b is (byte)'+' or (byte)'-' ? Phases.NumberExponentSign : digit ? Phases.NumberExponentDigits : -1;
            case Phases.NumberExponentSign:
            case Phases.NumberExponentDigits:
                return digit ? Phases.NumberExponentDigits : -1;
            default:
                return -1;
        }
    }

    /// <summary>
    /// Advances a bounded integer by one byte, tracking its magnitude and sign, and refusing a byte after which no
    /// value in range can be reached.
    /// </summary>
    /// <param name="node">The number node, with <see cref="GrammarNode.Minimum"/> and <see cref="GrammarNode.Maximum"/>.</param>
    /// <param name="phase">The number phase, updated.</param>
    /// <param name="magnitude">The digits so far as a value (capped above every bound), updated.</param>
    /// <param name="negative">1 after a minus sign, updated.</param>
    /// <param name="b">The byte.</param>
    /// <returns>Whether the byte was taken.</returns>
    public static bool BoundedInteger(GrammarNode node, ref int phase, ref int magnitude, ref int negative, byte b)
    {
        int next = Number(integerOnly: true, phase, b);
        if (next < 0)
        {
            return false;
        }

        int sign = next == Phases.NumberMinus ? 1 : negative;
        bool hasDigits = next != Phases.NumberMinus;
        long value = hasDigits ? Math.Min((magnitude * 10L) + (b - '0'), MagnitudeCap) : 0;
        if (!CanReach(node, sign == 1, value, hasDigits))
        {
            return false;
        }

        phase = next;
        magnitude = (int)value;
        negative = sign;
        return true;
    }

    /// <summary>Whether a complete bounded integer is within its bounds.</summary>
    /// <param name="node">The number node.</param>
    /// <param name="magnitude">The magnitude (capped).</param>
    /// <param name="negative">1 when negative.</param>
    public static bool InRange(GrammarNode node, int magnitude, int negative)
    {
        long value = negative == 1 ? -(long)magnitude : magnitude;
        return value >= node.Minimum && value <= node.Maximum;
    }

    /// <summary>Whether a number in <paramref name="phase"/> is a complete number.</summary>
    /// <param name="phase">The number phase.</param>
    public static bool NumberComplete(int phase)
        => phase is Phases.NumberZero or Phases.NumberInteger or Phases.NumberFraction or Phases.NumberExponentDigits;

    /// <summary>Bounds of integers must lie within plus or minus this; magnitudes are capped just above it.</summary>
    public const long MaxBound = 1_000_000_000;

    private const long MagnitudeCap = MaxBound + 1;

    // Whether some completion of the digits so far (appending digits; none after a leading 0) lies in the bounds.
    private static bool CanReach(GrammarNode node, bool negative, long magnitude, bool hasDigits)
    {
        // The magnitudes allowed on this side of zero (unbounded: long.MaxValue).
        long low;
        long high;
        if (negative)
        {
            low = node.Maximum == long.MaxValue ? 0 : Math.Max(0, -node.Maximum);
            high = node.Minimum == long.MinValue ? long.MaxValue : -node.Minimum;
        }
        else
        {
            low = Math.Max(0, node.Minimum);
            high = node.Maximum;
        }

        if (low > high)
        {
            return false;
        }

        if (!hasDigits)
        {
            return true;
        }

        if (magnitude == 0)
        {
            return low == 0;
        }

        long first = magnitude;
        long last = magnitude;
        while (true)
        {
            if (last >= low && first <= high)
            {
                return true;
            }

            if (first > high)
            {
                return false;
            }

            if (high == long.MaxValue)
            {
                return true; // below the range, and more digits reach it
            }

            first *= 10;
            last = (last * 10) + 9;
        }
    }

    // The four hex digits of \u escapes: a low surrogate may not stand alone, and after a high one it must follow.
    private static StepResult Hex(ref int phase, ref int detail, byte b)
    {
        int value = b switch
        {
            >= (byte)'0' and <= (byte)'9' => b - '0',
            >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
            >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
            _ => -1,
        };
        if (value < 0)
        {
            return StepResult.Dead;
        }

        bool low = phase >= Phases.StringLowHex0;
        int digits = phase - (low ? Phases.StringLowHex0 : Phases.StringHex0) + 1;
        if (low && digits == 1 && value != 0xD)
        {
            return StepResult.Dead;
        }

        detail = (detail << 4) | value;
        if (digits == 2)
        {
            bool lowSurrogate = detail is >= 0xDC and <= 0xDF;
            if (lowSurrogate != low)
            {
                return StepResult.Dead;
            }
        }

        if (digits < 4)
        {
            phase++;
            return StepResult.Continue;
        }

        phase = !low && detail is >= 0xD800 and <= 0xDBFF ? Phases.StringLowBackslash : Phases.StringBody;
        detail = 0;
        return StepResult.Continue;
    }

    // The continuation count and range of a UTF-8 lead byte (remaining * 8 + range), or -1.
    private static int Utf8Lead(byte b) => b switch
    {
        >= 0xC2 and <= 0xDF => (1 << 3) | 0,
        0xE0 => (2 << 3) | 1,
        0xED => (2 << 3) | 2,
        >= 0xE1 and <= 0xEF => (2 << 3) | 0,
        0xF0 => (3 << 3) | 3,
        >= 0xF1 and <= 0xF3 => (3 << 3) | 0,
        0xF4 => (3 << 3) | 4,
        _ => -1,
    };
}
