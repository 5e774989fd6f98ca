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

    private Parser(List<Token> tokens)
    {
        _tokens = tokens;
    }

    /// <summary>Parses a template into its statements.</summary>
    /// <exception cref="ChatTemplateException">On a syntax error, naming the line.</exception>
    public static Stmt[] Parse(string source)
    {
        var parser = new Parser(Lexer.Tokenize(source));
        return parser.Subparse(null, out _);
    }

    private Token Current => _tokens[_index];

    private Token Peek(int offset = 1) => _tokens[Math.Min(_index + offset, _tokens.Count - 1)];

    private Token Advance() => _tokens[_index++];

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
}
