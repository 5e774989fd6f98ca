// Licensed under the MIT License. See LICENSE in the repository root.

using InferenceServer.Templating.Internal.Ast;

namespace InferenceServer.Templating.Internal;

/// <summary>
/// Recursive-descent parser from tokens to the AST, following Jinja2's grammar and operator precedence
/// (<c>parse_condexpr</c> down to <c>parse_unary</c>, filters binding tighter than arithmetic). Filters and tests
/// are resolved here, so an unknown one is a syntax error, as it is a compile-time error in Jinja2.
/// </summary>
internal sealed partial class Parser
{
    /// <summary>How deep expressions and blocks may nest before the template is refused.</summary>
    public const int MaxNesting = 200;

    private readonly List<Token> _tokens;
    private int _index;
    private int _nesting;
    private int _loopDepth;

    // Jinja2 resolves filters and tests when it compiles, but inside an {% if %} or an inline if (a "soft frame")
    // an unknown one only fails when it runs. Unknown names outside soft frames are collected here and reported
    // after parsing, as Jinja2's compile step reports them after its parse step.
    private readonly List<(string Message, int Line)> _unknownNames = [];
    private bool _soft;

    private Parser(List<Token> tokens)
    {
        _tokens = tokens;
    }

    /// <summary>Parses a template into its statements.</summary>
    /// <exception cref="ChatTemplateException">On a syntax error, naming the line.</exception>
    public static Stmt[] Parse(string source)
    {
        var parser = new Parser(Lexer.Tokenize(source));
        Stmt[] body = parser.Subparse(null, out _);
        if (parser._unknownNames.Count > 0)
        {
            throw ChatTemplateException.Syntax(parser._unknownNames[0].Message, parser._unknownNames[0].Line);
        }

        return body;
    }

    private Token Current
    {
        get
        {
            Token token = _tokens[Math.Min(_index, _tokens.Count - 1)];
            return token.Kind == TokenKind.Error ? throw ChatTemplateException.Syntax(token.Value, token.Line) : token;
        }
    }

    private Token Peek(int offset = 1)
    {
        Token token = _tokens[Math.Min(_index + offset, _tokens.Count - 1)];
        return token.Kind == TokenKind.Error ? throw ChatTemplateException.Syntax(token.Value, token.Line) : token;
    }

    private Token Advance()
    {
        Token token = Current;
        if (_index < _tokens.Count - 1)
        {
            _index++;
        }

        return token;
    }

    /// <summary>Parses statements until a block whose keyword is one of <paramref name="endNames"/> (left unconsumed
    /// after its <c>{%</c>), or the end of the template when <paramref name="endNames"/> is null.</summary>
    private Stmt[] Subparse(string[]? endNames, out string? endName)
    {
        var body = new List<Stmt>();
        endName = null;
        while (true)
        {
            Token token = Current;
            switch (token.Kind)
            {
                case TokenKind.Data:
                    Advance();
                    body.Add(new TextStmt(token.Value) { Line = token.Line });
                    break;
                case TokenKind.VariableBegin:
                    Advance();
                    Expr value = ParseTuple(withCondExpr: true);
                    Expect(TokenKind.VariableEnd);
                    body.Add(new OutputStmt(value) { Line = token.Line });
                    break;
                case TokenKind.BlockBegin:
                    Advance();
                    if (endNames is not null && Current.Kind == TokenKind.Name && Array.IndexOf(endNames, Current.Value) >= 0)
                    {
                        endName = Current.Value;
                        Advance();
                        return [.. body];
                    }

                    if (ParseStatement() is { } statement)
                    {
                        body.Add(statement);
                    }

                    break;
                case TokenKind.End:
                    if (endNames is not null)
                    {
                        throw ChatTemplateException.Syntax(
                            $"unexpected end of template; Jinja was looking for the following tags: {string.Join(" or ", endNames.Select(n => "'" + n + "'"))}",
                            token.Line);
                    }

                    return [.. body];
                default:
                    throw ChatTemplateException.Syntax($"unexpected {token.Describe()}", token.Line);
            }
        }
    }

    private Token Expect(TokenKind kind, string? value = null)
    {
        Token token = Current;
        if (token.Kind != kind || (value is not null && token.Value != value))
        {
            string wanted = value is not null ? $"'{value}'" : kind switch
            {
                TokenKind.BlockEnd => "end of statement block",
                TokenKind.VariableEnd => "end of print statement",
                TokenKind.Name => "a name",
                _ => kind.ToString(),
            };
            throw ChatTemplateException.Syntax($"expected {wanted}, got {token.Describe()}", token.Line);
        }

        return Advance();
    }

    private bool SkipOperator(string op)
    {
        if (Current.IsOperator(op))
        {
            _index++;
            return true;
        }

        return false;
    }

    private bool SkipName(string name)
    {
        if (Current.IsName(name))
        {
            _index++;
            return true;
        }

        return false;
    }

    private void Enter(int line)
    {
        if (++_nesting > MaxNesting)
        {
            throw ChatTemplateException.Syntax($"the template nests expressions or blocks deeper than {MaxNesting} levels", line);
        }
    }

    private void Leave() => _nesting--;

    /// <summary>Runs <paramref name="parse"/> with the soft-frame flag set to <paramref name="soft"/>, restoring it after.</summary>
    private T WithSoftness<T>(bool soft, Func<T> parse)
    {
        bool saved = _soft;
        _soft = soft;
        try
        {
            return parse();
        }
        finally
        {
            _soft = saved;
        }
    }

    /// <summary>A filter or test that is not defined: a compile error outside soft frames, else a runtime error when reached.</summary>
    private void ReportUnknown(string kind, string name, int line)
    {
        if (!_soft)
        {
            _unknownNames.Add(($"No {kind} named '{name}'.", line));
        }
    }
}
