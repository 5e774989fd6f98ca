// Licensed under the MIT License. See LICENSE in the repository root.
namespace InferenceServer.Hosting.CommandLine;

/// <summary>
/// One known server flag: its name (without <c>--</c>, also its configuration key), the kind of value it takes, its
/// default as <c>--help</c> shows it, its help text, and vLLM's spelling of the same option when vLLM has one.
/// Immutable, so that the table can later feed validated option records (issue 20).
/// </summary>
/// <param name="Name">The flag without its leading dashes, e.g. <c>max-num-seqs</c>; also the configuration key.</param>
/// <param name="Kind">The value the flag takes.</param>
/// <param name="Default">The default as shown by <c>--help</c>; null for none.</param>
/// <param name="Help">One sentence on what the flag does.</param>
internal sealed record FlagDefinition(string Name, FlagKind Kind, string? Default, string Help)
{
    /// <summary>The allowed values of an <see cref="FlagKind.Enum"/> flag.</summary>
    public IReadOnlyList<string> Values { get; init; } = [];

    /// <summary>vLLM's flag with the same meaning (<c>--max-model-len</c>), or null when vLLM has none.</summary>
    public string? Vllm { get; init; }

    /// <summary>What the value looks like in usage text: <c>&lt;n&gt;</c>, <c>&lt;size&gt;</c>, <c>&lt;a|b&gt;</c>, ...</summary>
    public string Placeholder => Kind switch
    {
        FlagKind.Bool => "[true|false]",
        FlagKind.Int => "<n>",
        FlagKind.Size => "<size>",
        FlagKind.Sizes => "<size>[,<size>...]",
        FlagKind.Seconds => "<seconds>",
        FlagKind.Fraction => "<fraction>",
        FlagKind.Enum => "<" + string.Join('|', Values) + ">",
        FlagKind.Repeatable => "<value>...",
        _ => "<value>",
    };
}
