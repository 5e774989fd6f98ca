// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured;

/// <summary>
/// The budget of compiling one JSON schema and of masking with it, so that no schema can overflow the stack, use
/// memory out of proportion to its size, or stall the thread that masks logits. A schema over a compile limit is
/// refused with <see cref="SchemaLimitExceededException"/> (a 400 naming the limit); a sequence whose mask needs more
/// work than <see cref="MaxMaskWork"/> fails alone with <see cref="ConstraintBudgetExceededException"/>.
/// See ARCHITECTURE.md ("Limits").
/// </summary>
public sealed record SchemaLimits
{
    /// <summary>The limits the server uses.</summary>
    public static SchemaLimits Default { get; } = new();

    /// <summary>The most bytes of the schema's JSON text. Default 256 KiB.</summary>
    internal int MaxSchemaBytes { get; init; } = 256 * 1024;

    /// <summary>
    /// How deeply schemas may nest inside one another through <c>properties</c>, <c>items</c>, <c>anyOf</c> and the
    /// like (a <c>$ref</c> is not nesting: references are resolved iteratively), and how deeply an <c>enum</c> or
    /// <c>const</c> value may nest. Default 64.
    /// </summary>
    public int MaxNesting { get; init; } = 64;

    /// <summary>The most compiled grammar nodes (about one per schema, type and <c>$ref</c>). Default 10,000.</summary>
    internal int MaxNodes { get; init; } = 10_000;

    /// <summary>
    /// The most bytes of fixed text: the serialized <c>enum</c> and <c>const</c> values and the property names, over the
    /// whole schema. Default 128 KiB (OpenAI allows 120,000 characters).
    /// </summary>
    internal int MaxLiteralBytes { get; init; } = 128 * 1024;

    /// <summary>
    /// The most distinct alternatives one <c>anyOf</c>/<c>oneOf</c>/<c>$ref</c>/type-list union may expand to once its
    /// nested unions are flattened. It bounds the work of starting a value while masking. Default 512.
    /// </summary>
    internal int MaxUnionAlternatives { get; init; } = 512;

    /// <summary>The most flattened union alternatives over the whole schema (memory of the expansion). Default 65,536.</summary>
    internal int MaxTotalAlternatives { get; init; } = 65_536;

    /// <summary>The most time compiling may take (checked as it goes). Default 2 seconds.</summary>
    internal TimeSpan CompileTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The most matcher work (byte steps and union alternatives tried) one mask may take; past it the sequence fails with
    /// <see cref="ConstraintBudgetExceededException"/>. Default 2^25, a few tens of milliseconds of one core.
    /// </summary>
    internal long MaxMaskWork { get; init; } = 1L << 25;
}
