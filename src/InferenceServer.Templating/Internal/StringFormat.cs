// Licensed under the MIT License. See LICENSE in the repository root.

using System.Text;

namespace InferenceServer.Templating.Internal;

/// <summary>Python's <c>str.format</c> for the common cases: <c>{}</c>, <c>{0}</c>, <c>{name}</c>, <c>{{</c>/<c>}}</c>, with <c>!r</c>/<c>!s</c>.</summary>
internal static class StringFormat
{
    /// <summary>Formats <paramref name="format"/> with positional and keyword <paramref name="args"/>.</summary>
    public static string Format(string format, CallArgs args)
    {
        var sb = new StringBuilder();
        int auto = 0;
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c == '}')
            {
                if (i + 1 < format.Length && format[i + 1] == '}')
                {
                    i++;
                }

                sb.Append('}');
                continue;
            }

            if (c != '{')
            {
                sb.Append(c);
                continue;
            }

            if (i + 1 < format.Length && format[i + 1] == '{')
            {
                sb.Append('{');
                i++;
                continue;
            }

            int close = format.IndexOf('}', i);
            if (close < 0)
            {
                throw ChatTemplateException.Runtime("ValueError: Single '{' encountered in format string");
            }

            string field = format[(i + 1)..close];
            bool repr = false;
            int bang = field.IndexOf('!', StringComparison.Ordinal);
            if (bang >= 0)
            {
                repr = field[(bang + 1)..].StartsWith('r');
                field = field[..bang];
            }

            int colon = field.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                if (colon + 1 < field.Length)
                {
                    throw ChatTemplateException.Runtime("ValueError: format specifications in str.format are not supported");
                }

                field = field[..colon];
            }

            object? value;
            if (field.Length == 0)
            {
                value = auto < args.Count ? args.Positional[auto++] : throw ChatTemplateException.Runtime("IndexError: Replacement index out of range for positional args tuple");
            }
            else if (int.TryParse(field, out int index))
            {
                value = index < args.Count ? args.Positional[index] : throw ChatTemplateException.Runtime("IndexError: Replacement index out of range for positional args tuple");
            }
            else
            {
                value = args.TryGet(-1, field, out object? named) ? named : throw ChatTemplateException.Runtime($"KeyError: '{field}'");
            }

            sb.Append(repr ? PyFormat.Repr(value) : PyFormat.Str(value));
            i = close;
        }

        return sb.ToString();
    }
}
