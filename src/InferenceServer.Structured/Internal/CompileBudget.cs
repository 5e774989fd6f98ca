// Licensed under the MIT License. See LICENSE in the repository root.

using System.Diagnostics;
using System.Globalization;

namespace InferenceServer.Structured.Internal;

/// <summary>
/// Counts what compiling one schema costs against its <see cref="SchemaLimits"/>: nodes, fixed-text bytes, flattened
/// union alternatives and elapsed time (read every 1,024 units of work, so the clock costs nothing measurable). Each
/// check throws <see cref="SchemaLimitExceededException"/> naming the limit.
/// </summary>
internal sealed class CompileBudget
{
    private const int ClockInterval = 1024;

    private readonly long _started = Stopwatch.GetTimestamp();
    private int _nodes;
    private long _literalBytes;
    private long _alternatives;
    private int _work;

    /// <summary>Starts counting against <paramref name="limits"/>.</summary>
    /// <param name="limits">The limits.</param>
    public CompileBudget(SchemaLimits limits) => Limits = limits;

    /// <summary>The limits counted against.</summary>
    public SchemaLimits Limits { get; }

    /// <summary>Throws the exception for <paramref name="limit"/> of <paramref name="value"/>.</summary>
    /// <param name="limit">The limit's name.</param>
    /// <param name="value">The limit's value.</param>
    /// <param name="detail">What exceeded it.</param>
    public static SchemaLimitExceededException Exceeded(string limit, long value, string detail)
        => new(limit, value.ToString("N0", CultureInfo.InvariantCulture), detail);

    /// <summary>Throws the exception for <paramref name="limit"/> of <paramref name="value"/> (already formatted).</summary>
    /// <param name="limit">The limit's name.</param>
    /// <param name="value">The limit's value with its unit.</param>
    /// <param name="detail">What exceeded it.</param>
    public static SchemaLimitExceededException Exceeded(string limit, string value, string detail) => new(limit, value, detail);

    /// <summary>Counts one more grammar node.</summary>
    /// <param name="path">Where in the schema the node comes from.</param>
    public void Node(string path)
    {
        if (++_nodes > Limits.MaxNodes)
        {
            throw Exceeded(nameof(SchemaLimits.MaxNodes), Limits.MaxNodes, $"it compiles to more grammar nodes (reached at '{path}').");
        }

        Work(1);
    }

    /// <summary>Counts <paramref name="bytes"/> more bytes of enum/const values or property names.</summary>
    /// <param name="bytes">The bytes.</param>
    /// <param name="path">Where they are.</param>
    public void Literal(int bytes, string path)
    {
        _literalBytes += bytes;
        if (_literalBytes > Limits.MaxLiteralBytes)
        {
            throw Exceeded(nameof(SchemaLimits.MaxLiteralBytes), Limits.MaxLiteralBytes, $"its enum/const values and property names are longer in total (reached at '{path}').");
        }

        Work(1 + (bytes >> 6));
    }

    /// <summary>Counts the flattened alternatives of one union.</summary>
    /// <param name="count">How many distinct alternatives the union expands to.</param>
    public void Alternatives(int count)
    {
        if (count > Limits.MaxUnionAlternatives)
        {
            throw Exceeded(nameof(SchemaLimits.MaxUnionAlternatives), Limits.MaxUnionAlternatives, "an anyOf/oneOf/$ref union expands to more distinct alternatives once nested unions are flattened.");
        }

        _alternatives += count;
        if (_alternatives > Limits.MaxTotalAlternatives)
        {
            throw Exceeded(nameof(SchemaLimits.MaxTotalAlternatives), Limits.MaxTotalAlternatives, "its anyOf/oneOf/$ref unions expand to more alternatives in total.");
        }

        Work(count);
    }

    /// <summary>Counts <paramref name="units"/> of work and, every so often, checks the time.</summary>
    /// <param name="units">The units (about one per keyword, node, byte of 64 or alternative).</param>
    public void Work(int units)
    {
        _work += units;
        if (_work < ClockInterval)
        {
            return;
        }

        _work = 0;
        if (Stopwatch.GetElapsedTime(_started) > Limits.CompileTimeout)
        {
            throw Exceeded(
                nameof(SchemaLimits.CompileTimeout),
                Limits.CompileTimeout.TotalMilliseconds.ToString("N0", CultureInfo.InvariantCulture) + " ms",
                "compiling it takes longer.");
        }
    }
}
