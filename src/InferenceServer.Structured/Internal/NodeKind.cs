// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>What a <see cref="GrammarNode"/> matches.</summary>
internal enum NodeKind
{
    /// <summary>The document: bounded leading whitespace, one value, then nothing.</summary>
    Root,

    /// <summary>A JSON object with declared properties in declaration order and optional extra keys.</summary>
    Object,

    /// <summary>A JSON array with positional (prefix) items, an item schema and a count range.</summary>
    Array,

    /// <summary>A JSON string with a length range in code points.</summary>
    String,

    /// <summary>A JSON number, or an integer without fraction or exponent.</summary>
    Number,

    /// <summary>One of a fixed set of serialized JSON values (enum, const, true/false, null).</summary>
    Literal,

    /// <summary>Any of several alternatives (anyOf, oneOf, a list of types, a $ref alias).</summary>
    Union,
}
