// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;

namespace InferenceServer.Bench;

/// <summary>A minimal <c>--name value</c> / <c>--flag</c> parser that rejects options it was not told about.</summary>
internal sealed class CommandLine
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);

    /// <summary>Parses <paramref name="args"/>; <paramref name="valued"/> take a value, <paramref name="flags"/> do not.</summary>
    /// <exception cref="FormatException">An unknown option or a missing value.</exception>
    public CommandLine(string[] args, IReadOnlyCollection<string> valued, IReadOnlyCollection<string> flags)
    {
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new FormatException($"unexpected argument '{arg}'");
            }

            var name = arg[2..];
            string? inline = null;
            var equals = name.IndexOf('=', StringComparison.Ordinal);
            if (equals >= 0)
            {
                inline = name[(equals + 1)..];
                name = name[..equals];
            }

            if (flags.Contains(name))
            {
                _values[name] = inline;
            }
            else if (valued.Contains(name))
            {
                _values[name] = inline ?? (i + 1 < args.Length ? args[++i] : throw new FormatException($"--{name} needs a value"));
            }
            else
            {
                throw new FormatException($"unknown option --{name}");
            }
        }
    }

    /// <summary>Whether <c>--name</c> was given.</summary>
    public bool Has(string name) => _values.ContainsKey(name);

    /// <summary>The value of <c>--name</c>, or <paramref name="fallback"/>.</summary>
    public string? String(string name, string? fallback = null) => _values.TryGetValue(name, out var value) ? value : fallback;

    /// <summary>The integer value of <c>--name</c>, or <paramref name="fallback"/>.</summary>
    public int Int(string name, int fallback, int minimum = 0)
    {
        var text = String(name);
        if (text is null)
        {
            return fallback;
        }

        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= minimum
            ? value
            : throw new FormatException($"--{name} must be an integer of at least {minimum}, not '{text}'");
    }

    /// <summary>The number value of <c>--name</c>, or <paramref name="fallback"/>.</summary>
    public double Double(string name, double fallback, double minimum = 0)
    {
        var text = String(name);
        if (text is null)
        {
            return fallback;
        }

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= minimum
            ? value
            : throw new FormatException($"--{name} must be a number of at least {minimum}, not '{text}'");
    }

    /// <summary>A comma-separated list of positive integers, or null when <c>--name</c> is absent.</summary>
    public int[]? IntList(string name)
    {
        var text = String(name);
        if (text is null)
        {
            return null;
        }

        var items = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var values = new int[items.Length];
        for (var i = 0; i < items.Length; i++)
        {
            if (!int.TryParse(items[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out values[i]) || values[i] < 1)
            {
                throw new FormatException($"--{name} must be a comma-separated list of positive integers, not '{text}'");
            }
        }

        return values.Length > 0 ? values : throw new FormatException($"--{name} must not be empty");
    }
}
