// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Structured.Internal;

/// <summary>
/// One compiled schema node. A single class with the fields of every kind (only those of <see cref="Kind"/> are
/// used), so that the matcher dispatches with a switch rather than virtual calls. Nodes refer to each other by index
/// into <see cref="JsonGrammar.Nodes"/>, which allows recursive schemas. Written by <see cref="SchemaCompiler"/> only,
/// read-only afterwards.
/// </summary>
internal sealed class GrammarNode
{
    /// <summary>Creates a node of <paramref name="kind"/>.</summary>
    /// <param name="kind">What the node matches.</param>
    public GrammarNode(NodeKind kind) => Kind = kind;

    /// <summary>What the node matches.</summary>
    public NodeKind Kind { get; set; }

    /// <summary>The bytes a value of this node can start with (whitespace excluded).</summary>
    public ByteSet StartBytes { get; } = new();

    /// <summary>Root: the value's node.</summary>
    public int Value { get; set; } = -1;

    /// <summary>
    /// Union: the alternatives' nodes; once compiled, flattened: the distinct non-union nodes reachable through nested
    /// unions (at most <see cref="SchemaLimits.MaxUnionAlternatives"/>).
    /// </summary>
    public int[] Alternatives { get; set; } = [];

    /// <summary>Object: the quoted, canonically escaped names of the declared properties.</summary>
    public byte[][] PropertyNames { get; set; } = [];

    /// <summary>Object: each declared property's value node.</summary>
    public int[] PropertyValues { get; set; } = [];

    /// <summary>Object: whether each declared property must appear.</summary>
    public bool[] PropertyRequired { get; set; } = [];

    /// <summary>Object: whether each declared property may appear (false when its schema accepts no finite value).</summary>
    public bool[] PropertyEnabled { get; set; } = [];

    /// <summary>Object: for each next-property index <c>a</c>, the first required property at or after <c>a</c> (or the count).</summary>
    public int[] FirstRequiredFrom { get; set; } = [];

    /// <summary>Object: the node of extra properties' values, or -1 when only declared properties are allowed.</summary>
    public int AdditionalValue { get; set; } = -1;

    /// <summary>Object: the string node that matches an extra key after it leaves the declared keys' trie.</summary>
    public int ExtraKey { get; set; } = -1;

    /// <summary>Object: the trie of <see cref="PropertyNames"/>, or null when none is declared.</summary>
    public LiteralTrie? Keys { get; set; }

    /// <summary>Object: per key trie node, the string phase after its prefix (to continue as an extra key).</summary>
    public int[] KeyStringPhase { get; set; } = [];

    /// <summary>Object: per key trie node, the string phase detail after its prefix.</summary>
    public int[] KeyStringDetail { get; set; } = [];

    /// <summary>Object: per key trie node, whether an extra key can leave the trie at or below it.</summary>
    public bool[] KeyCanDivergeBelow { get; set; } = [];

    /// <summary>Object: per key trie node, the enabled declared properties whose names end at or below it, ascending.</summary>
    public int[][] KeyPropertiesBelow { get; set; } = [];

    /// <summary>Array: the node of each positional item (<c>prefixItems</c>).</summary>
    public int[] PrefixItems { get; set; } = [];

    /// <summary>Array: the node of items past the prefix, or -1 when there may be none.</summary>
    public int Items { get; set; } = -1;

    /// <summary>Array: the least number of items.</summary>
    public int MinItems { get; set; }

    /// <summary>Array: the most items (<see cref="int.MaxValue"/> when unbounded).</summary>
    public int MaxItems { get; set; } = int.MaxValue;

    /// <summary>String: the least length in code points.</summary>
    public int MinLength { get; set; }

    /// <summary>String: the most code points (<see cref="int.MaxValue"/> when unbounded).</summary>
    public int MaxLength { get; set; } = int.MaxValue;

    /// <summary>String: whether backslash escapes are allowed (false only for extra keys beside declared ones).</summary>
    public bool AllowEscapes { get; set; } = true;

    /// <summary>Number: whether only integers (no fraction, no exponent) are allowed.</summary>
    public bool IntegerOnly { get; set; }

    /// <summary>Number (integers only): the least value, or <see cref="long.MinValue"/> when unbounded.</summary>
    public long Minimum { get; set; } = long.MinValue;

    /// <summary>Number (integers only): the greatest value, or <see cref="long.MaxValue"/> when unbounded.</summary>
    public long Maximum { get; set; } = long.MaxValue;

    /// <summary>Number: whether <see cref="Minimum"/> or <see cref="Maximum"/> is set (the magnitude is then tracked).</summary>
    public bool Bounded => Minimum != long.MinValue || Maximum != long.MaxValue;

    /// <summary>Literal: the trie of the serialized values.</summary>
    public LiteralTrie? Literals { get; set; }

    /// <summary>
    /// Array and string: the count from which nothing changes (counting further would only make states differ), so
    /// that a long unconstrained string repeats one state and its mask is cached.
    /// </summary>
    public int CountCap { get; set; }
}
