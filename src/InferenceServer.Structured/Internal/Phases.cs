// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>The phases of each node kind (<see cref="MatchState.Phase"/>). Phase 0 is always "before the value".</summary>
internal static class Phases
{
    /// <summary>Root: leading whitespace, before the value; <see cref="MatchState.C"/> counts it.</summary>
    public const int RootStart = 0;

    /// <summary>Root: the value is complete; only end-of-sequence may follow.</summary>
    public const int RootDone = 1;

    /// <summary>Object: expecting <c>{</c>.</summary>
    public const int ObjectStart = 0;

    /// <summary>Object: after <c>{</c>; a key or <c>}</c>.</summary>
    public const int ObjectAfterOpen = 1;

    /// <summary>Object: after <c>,</c>; a key.</summary>
    public const int ObjectAfterComma = 2;

    /// <summary>Object: inside a key that is still a prefix of a declared key; B is the key trie node.</summary>
    public const int ObjectKeyTrie = 3;

    /// <summary>Object: after a key; expecting <c>:</c>; B is the value's node.</summary>
    public const int ObjectAfterKey = 4;

    /// <summary>Object: after <c>:</c>; expecting the value of node B.</summary>
    public const int ObjectAfterColon = 5;

    /// <summary>Object: after a value; <c>,</c> or <c>}</c>.</summary>
    public const int ObjectAfterValue = 6;

    /// <summary>Array: expecting <c>[</c>.</summary>
    public const int ArrayStart = 0;

    /// <summary>Array: after <c>[</c>; an item or <c>]</c>.</summary>
    public const int ArrayAfterOpen = 1;

    /// <summary>Array: after <c>,</c>; an item.</summary>
    public const int ArrayAfterComma = 2;

    /// <summary>Array: after an item; <c>,</c> or <c>]</c>.</summary>
    public const int ArrayAfterValue = 3;

    /// <summary>String: expecting the opening quote.</summary>
    public const int StringStart = 0;

    /// <summary>String: between characters.</summary>
    public const int StringBody = 1;

    /// <summary>String: inside a multi-byte UTF-8 character; B = remaining * 8 + range of the next byte.</summary>
    public const int StringContinuation = 2;

    /// <summary>String: after a backslash.</summary>
    public const int StringEscape = 3;

    /// <summary>String: after <c>\u</c> and 0 hex digits; the next three phases follow 1, 2 and 3 digits. B accumulates.</summary>
    public const int StringHex0 = 4;

    /// <summary>String: after a high-surrogate escape; expecting the backslash of the low surrogate.</summary>
    public const int StringLowBackslash = 8;

    /// <summary>String: expecting the <c>u</c> of the low surrogate's escape.</summary>
    public const int StringLowU = 9;

    /// <summary>String: after <c>\u</c> of a low surrogate and 0 hex digits; the next three phases follow.</summary>
    public const int StringLowHex0 = 10;

    /// <summary>Number: expecting <c>-</c> or a digit.</summary>
    public const int NumberStart = 0;

    /// <summary>Number: after <c>-</c>.</summary>
    public const int NumberMinus = 1;

    /// <summary>Number: the integer part is <c>0</c> (complete).</summary>
    public const int NumberZero = 2;

    /// <summary>Number: in integer digits that began with 1-9 (complete).</summary>
    public const int NumberInteger = 3;

    /// <summary>Number: after the decimal point.</summary>
    public const int NumberDot = 4;

    /// <summary>Number: in fraction digits (complete).</summary>
    public const int NumberFraction = 5;

    /// <summary>Number: after <c>e</c> or <c>E</c>.</summary>
    public const int NumberExponent = 6;

    /// <summary>Number: after the exponent's sign.</summary>
    public const int NumberExponentSign = 7;

    /// <summary>Number: in exponent digits (complete).</summary>
    public const int NumberExponentDigits = 8;
}
