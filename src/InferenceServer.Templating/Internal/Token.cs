// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>One lexical token: its kind, its text (decoded for strings), its numeric value and its 1-based line.</summary>
/// <param name="Kind">What the token is.</param>
/// <param name="Value">The text: the identifier, the decoded string, the operator or the data.</param>
/// <param name="Number">The value of an <see cref="TokenKind.Integer"/> (long) or <see cref="TokenKind.Float"/> (double) token.</param>
/// <param name="Line">The line the token starts on.</param>
internal readonly record struct Token(TokenKind Kind, string Value, object? Number, int Line)
{
    /// <summary>Whether the token is the operator <paramref name="op"/>.</summary>
    public bool IsOperator(string op) => Kind == TokenKind.Operator && Value == op;

    /// <summary>Whether the token is the name (keyword) <paramref name="name"/>.</summary>
    public bool IsName(string name) => Kind == TokenKind.Name && Value == name;

    /// <summary>How the token reads in an error message.</summary>
    public string Describe() => Kind switch
    {
        TokenKind.End => "end of template",
        TokenKind.BlockEnd => "end of statement block",
        TokenKind.VariableEnd => "end of print statement",
        TokenKind.BlockBegin => "begin of statement block",
        TokenKind.VariableBegin => "begin of print statement",
        TokenKind.Data => "template data",
        TokenKind.String => "string",
        _ => "'" + Value + "'",
    };
}
