// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Hosting.CommandLine;

/// <summary>What value a server flag takes; drives parsing, validation and the <c>--help</c> column.</summary>
internal enum FlagKind
{
    /// <summary>No value (<c>--flag</c>), an explicit <c>true</c>/<c>false</c>, or the <c>--no-flag</c> form.</summary>
    Bool,

    /// <summary>A whole number.</summary>
    Int,

    /// <summary>Bytes with an optional k/m/g suffix (powers of 1024), or a fraction in (0, 1] where the flag allows it.</summary>
    Size,

    /// <summary>A non-negative number of seconds.</summary>
    Seconds,

    /// <summary>A number in (0, 1].</summary>
    Fraction,

    /// <summary>A <see cref="Size"/>, or several separated by commas (one per <c>--attention-device</c>).</summary>
    Sizes,

    /// <summary>Any text (a path, an address, an id).</summary>
    String,

    /// <summary>One of <see cref="FlagDefinition.Values"/> (case-insensitive).</summary>
    Enum,

    /// <summary>One or more words (<c>--flag a b</c>, <c>--flag a,b</c> or the flag repeated), passed on comma-joined.</summary>
    Repeatable,
}
