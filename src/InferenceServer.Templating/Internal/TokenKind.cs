// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>The kinds of token the <see cref="Lexer"/> produces.</summary>
internal enum TokenKind
{
    /// <summary>Literal template text, already whitespace-controlled.</summary>
    Data,

    /// <summary><c>{{</c>.</summary>
    VariableBegin,

    /// <summary><c>}}</c>.</summary>
    VariableEnd,

    /// <summary><c>{%</c>.</summary>
    BlockBegin,

    /// <summary><c>%}</c>.</summary>
    BlockEnd,

    /// <summary>An identifier (also keywords such as <c>if</c>, <c>in</c>, <c>none</c>).</summary>
    Name,

    /// <summary>A string literal, with its escapes decoded.</summary>
    String,

    /// <summary>An integer literal.</summary>
    Integer,

    /// <summary>A float literal.</summary>
    Float,

    /// <summary>An operator or punctuation (<c>+</c>, <c>==</c>, <c>(</c>, <c>|</c>...).</summary>
    Operator,

    /// <summary>The end of the template.</summary>
    End,

    /// <summary>A lexical error; the parser raises it when it gets there (Jinja2 lexes lazily, so an earlier
    /// syntax error wins over a later lexical one). <see cref="Token.Value"/> is the message.</summary>
    Error,
}
