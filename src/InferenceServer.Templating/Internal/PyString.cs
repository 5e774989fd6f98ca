// Licensed under the MIT License. See LICENSE in the repository root.

using System.Globalization;
using System.Text;

namespace InferenceServer.Templating.Internal;

/// <summary>
/// Python <c>str</c> semantics over .NET strings: whitespace as <c>str.isspace</c> sees it, <c>strip</c>/<c>split</c>/
/// <c>title</c>, and length, indexing and slicing by code point (a character outside the BMP counts once, as in Python).
/// </summary>
internal static class PyString
{
    /// <summary>Python's <c>str.isspace</c> for one UTF-16 unit (includes the separators <c>\x1c</c>-<c>\x1f</c>).</summary>
    public static bool IsWhiteSpace(char c) => char.IsWhiteSpace(c) || (c >= '\x1c' && c <= '\x1f');

    /// <summary><c>s.strip(chars)</c>.</summary>
    public static string Strip(string s, string? chars = null) => LStrip(RStrip(s, chars), chars);

    /// <summary><c>s.lstrip(chars)</c>.</summary>
    public static string LStrip(string s, string? chars = null)
    {
        int i = 0;
        while (i < s.Length && (chars is null ? IsWhiteSpace(s[i]) : chars.Contains(s[i], StringComparison.Ordinal)))
        {
            i++;
        }

        return i == 0 ? s : s[i..];
    }

    /// <summary><c>s.rstrip(chars)</c>.</summary>
    public static string RStrip(string s, string? chars = null)
    {
        int i = s.Length;
        while (i > 0 && (chars is null ? IsWhiteSpace(s[i - 1]) : chars.Contains(s[i - 1], StringComparison.Ordinal)))
        {
            i--;
        }

        return i == s.Length ? s : s[..i];
    }

    /// <summary><c>s.split(sep, maxsplit)</c>; a null separator splits on whitespace runs and drops empty parts.</summary>
    public static PyList Split(string s, string? sep, long maxSplit)
    {
        var parts = new List<object?>();
        if (sep is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && IsWhiteSpace(s[i]))
                {
                    i++;
                }

                if (i >= s.Length)
                {
                    break;
                }

                if (maxSplit >= 0 && parts.Count == maxSplit)
                {
                    parts.Add(RStrip(s[i..]));
                    break;
                }

                int start = i;
                while (i < s.Length && !IsWhiteSpace(s[i]))
                {
                    i++;
                }

                parts.Add(s[start..i]);
            }

            return new PyList(parts);
        }

        if (sep.Length == 0)
        {
            throw ChatTemplateException.Runtime("ValueError: empty separator");
        }

        int from = 0;
        while (maxSplit < 0 || parts.Count < maxSplit)
        {
            int at = s.IndexOf(sep, from, StringComparison.Ordinal);
            if (at < 0)
            {
                break;
            }

            parts.Add(s[from..at]);
            from = at + sep.Length;
        }

        parts.Add(s[from..]);
        return new PyList(parts);
    }

    /// <summary><c>s.rsplit(sep, maxsplit)</c>.</summary>
    public static PyList RSplit(string s, string? sep, long maxSplit)
    {
        if (maxSplit < 0)
        {
            return Split(s, sep, maxSplit);
        }

        var parts = new List<object?>();
        if (sep is null)
        {
            int i = s.Length;
            while (true)
            {
                while (i > 0 && IsWhiteSpace(s[i - 1]))
                {
                    i--;
                }

                if (i == 0)
                {
                    break;
                }

                if (parts.Count == maxSplit)
                {
                    parts.Add(LStrip(s[..i]));
                    break;
                }

                int end = i;
                while (i > 0 && !IsWhiteSpace(s[i - 1]))
                {
                    i--;
                }

                parts.Add(s[i..end]);
            }
        }
        else
        {
            if (sep.Length == 0)
            {
                throw ChatTemplateException.Runtime("ValueError: empty separator");
            }

            int end = s.Length;
            while (parts.Count < maxSplit)
            {
                int at = end - sep.Length < 0 ? -1 : s.LastIndexOf(sep, end - 1, end, StringComparison.Ordinal);
                if (at < 0 || at + sep.Length > end)
                {
                    break;
                }

                parts.Add(s[(at + sep.Length)..end]);
                end = at;
            }

            parts.Add(s[..end]);
        }

        parts.Reverse();
        return new PyList(parts);
    }

    /// <summary>Python's <c>str.title()</c>: a cased letter after an uncased character is upper-cased, the others lower-cased.</summary>
    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            bool cased = char.IsUpper(c) || char.IsLower(c) || CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.TitlecaseLetter;
            sb.Append(cased ? (previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)) : c);
            previousCased = cased;
        }

        return sb.ToString();
    }

    /// <summary>Python's <c>str.upper()</c>: invariant upper-casing plus the full mapping of <c>ß</c> to <c>SS</c>.</summary>
    public static string Upper(string s)
    {
        string upper = s.ToUpperInvariant();
        return upper.Contains('ß', StringComparison.Ordinal) ? upper.Replace("ß", "SS", StringComparison.Ordinal) : upper;
    }

    /// <summary>Python's <c>str.capitalize()</c>: the first character upper-cased, the rest lower-cased.</summary>
    public static string Capitalize(string s)
        => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>Whether the string has UTF-16 surrogates (so code point and UTF-16 indices differ).</summary>
    public static bool HasSurrogates(string s)
    {
        foreach (char c in s)
        {
            if (char.IsSurrogate(c))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The length in code points (Python's <c>len(s)</c>).</summary>
    public static int Length(string s)
    {
        if (!HasSurrogates(s))
        {
            return s.Length;
        }

        int n = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (!(char.IsLowSurrogate(s[i]) && i > 0 && char.IsHighSurrogate(s[i - 1])))
            {
                n++;
            }
        }

        return n;
    }

    /// <summary>The code points of <paramref name="s"/> as one-character Python strings (what iterating a string yields).</summary>
    public static List<object?> CodePoints(string s)
    {
        var list = new List<object?>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                list.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                list.Add(s[i].ToString());
            }
        }

        return list;
    }

    /// <summary>Python's <c>str.center(width)</c>.</summary>
    public static string Center(string s, int width, char fill = ' ')
    {
        int len = Length(s);
        if (width <= len)
        {
            return s;
        }

        int marg = width - len;
        int left = (marg / 2) + (marg & width & 1);
        return new string(fill, left) + s + new string(fill, marg - left);
    }
}
