// Licensed under the MIT License. See LICENSE in the repository root.
using System.Globalization;

namespace InferenceServer.Hosting.CommandLine;

/// <summary>Sizes on the command line: bytes with an optional k/m/g suffix (powers of 1024), or a fraction in (0, 1].</summary>
internal static class SizeText
{
    /// <summary>Reads <paramref name="text"/>; false when it is not a positive number with an optional suffix.</summary>
    public static bool TryParse(string? text, out double value)
    {
        value = 0;
        text = text?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        var multiplier = char.ToLowerInvariant(text[^1]) switch
        {
            'k' => 1024.0,
            'm' => 1024.0 * 1024,
            'g' => 1024.0 * 1024 * 1024,
            _ => 1.0,
        };
        if (multiplier > 1)
        {
            text = text[..^1];
        }

        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) || !double.IsFinite(number) || number <= 0)
        {
            return false;
        }

        value = number * multiplier;
        return true;
    }
}
