// Licensed under the MIT License. See LICENSE in the repository root.

using InferenceServer.Templating.Internal.Ast;

namespace InferenceServer.Templating.Internal;

/// <summary>Expressions, by Jinja2's precedence: conditional, or, and, not, comparison, + -, ~, * / // %, **, unary, postfix, filters and tests.</summary>
internal sealed partial class Parser
{
    private static readonly HashSet<string> CompareOperators = ["==", "!=", "<", "<=", ">", ">="];

    /// <summary>An expression, or a tuple of them separated by commas (<c>{{ a, b }}</c>, <c>for x in a, b</c>).</summary>
    private Expr ParseTuple(bool withCondExpr, string? extraEnd = null)
    {
        int line = Current.Line;
        var items = new List<Expr>();
        bool isTuple = false;
        while (true)
        {
            if (items.Count > 0)
            {
                Expect(TokenKind.Operator, ",");
            }

            if (IsTupleEnd(extraEnd))
            {
                break;
            }

            items.Add(ParseExpression(withCondExpr));
            if (Current.IsOperator(","))
            {
                isTuple = true;
            }
            else
            {
                break;
            }
        }

        if (!isTuple)
        {
            return items.Count == 1 ? items[0] : throw ChatTemplateException.Syntax($"expected an expression, got {Current.Describe()}", Current.Line);
        }

        return new ListExpr([.. items], isTuple: true) { Line = line };
    }

    private bool IsTupleEnd(string? extraEnd)
        => Current.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd or TokenKind.End
            || Current.IsOperator(")")
            || (extraEnd is not null && Current.IsName(extraEnd))
            || (extraEnd is not null && Current.IsName("if"));

    private Expr ParseExpression(bool withCondExpr)
    {
        Enter(Current.Line);
        try
        {
            return withCondExpr ? ParseCondExpr() : ParseOr();
        }
        finally
        {
            Leave();
        }
    }

    private Expr ParseCondExpr()
    {
        int line = Current.Line;
        int unknownMark = _unknownNames.Count;
        Expr expr = ParseOr();
        while (Current.IsName("if"))
        {
            // The whole inline if is a soft frame, including the value before 'if' that was parsed already.
            _unknownNames.RemoveRange(unknownMark, _unknownNames.Count - unknownMark);
            Advance();
            Expr then = expr;
            expr = WithSoftness(true, () =>
            {
                Expr test = ParseOr();
                Expr? otherwise = SkipName("else") ? ParseCondExpr() : null;
                return new CondExpr(test, then, otherwise) { Line = line };
            });
        }

        return expr;
    }

    private Expr ParseOr()
    {
        int line = Current.Line;
        Expr left = ParseAnd();
        while (SkipName("or"))
        {
            left = new LogicalExpr(isAnd: false, left, ParseAnd()) { Line = line };
        }

        return left;
    }

    private Expr ParseAnd()
    {
        int line = Current.Line;
        Expr left = ParseNot();
        while (SkipName("and"))
        {
            left = new LogicalExpr(isAnd: true, left, ParseNot()) { Line = line };
        }

        return left;
    }

    private Expr ParseNot()
    {
        int line = Current.Line;
        if (SkipName("not"))
        {
            Enter(line);
            try
            {
                return new NotExpr(ParseNot()) { Line = line };
            }
            finally
            {
                Leave();
            }
        }

        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        int line = Current.Line;
        Expr first = ParseMath1();
        var operators = new List<string>();
        var operands = new List<Expr>();
        while (true)
        {
            Token token = Current;
            if (token.Kind == TokenKind.Operator && CompareOperators.Contains(token.Value))
            {
                Advance();
                operators.Add(token.Value);
            }
            else if (token.IsName("in"))
            {
                Advance();
                operators.Add("in");
            }
            else if (token.IsName("not") && Peek().IsName("in"))
            {
                Advance();
                Advance();
                operators.Add("notin");
            }
            else
            {
                break;
            }

            operands.Add(ParseMath1());
        }

        return operators.Count == 0 ? first : new CompareExpr(first, [.. operators], [.. operands]) { Line = line };
    }

    private Expr ParseMath1()
    {
        int line = Current.Line;
        Expr left = ParseConcat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
        {
            string op = Advance().Value;
            left = new BinaryExpr(op, left, ParseConcat()) { Line = line };
        }

        return left;
    }

    private Expr ParseConcat()
    {
        int line = Current.Line;
        Expr left = ParseMath2();
        while (SkipOperator("~"))
        {
            left = new BinaryExpr("~", left, ParseMath2()) { Line = line };
        }

        return left;
    }

    private Expr ParseMath2()
    {
        int line = Current.Line;
        Expr left = ParsePow();
        while (Current.IsOperator("*") || Current.IsOperator("/") || Current.IsOperator("//") || Current.IsOperator("%"))
        {
            string op = Advance().Value;
            left = new BinaryExpr(op, left, ParsePow()) { Line = line };
        }

        return left;
    }

    private Expr ParsePow()
    {
        int line = Current.Line;
        Expr left = ParseUnary(withFilter: true);
        while (SkipOperator("**"))
        {
            left = new BinaryExpr("**", left, ParseUnary(withFilter: true)) { Line = line };
        }

        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        Token token = Current;
        Enter(token.Line);
        try
        {
            Expr node;
            if (token.IsOperator("-") || token.IsOperator("+"))
            {
                Advance();
                node = new UnaryExpr(token.Value[0], ParseUnary(withFilter: false)) { Line = token.Line };
            }
            else
            {
                node = ParsePrimary();
            }

            node = ParsePostfix(node);
            return withFilter ? ParseFilterExpr(node) : node;
        }
        finally
        {
            Leave();
        }
    }

    private Expr ParsePrimary()
    {
        Token token = Advance();
        switch (token.Kind)
        {
            case TokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new ConstExpr(true) { Line = token.Line },
                    "false" or "False" => new ConstExpr(false) { Line = token.Line },
                    "none" or "None" => new ConstExpr(null) { Line = token.Line },
                    _ => new NameExpr(token.Value) { Line = token.Line },
                };
            case TokenKind.String:
                string text = token.Value;
                while (Current.Kind == TokenKind.String)
                {
                    text += Advance().Value;
                }

                return new ConstExpr(text) { Line = token.Line };
            case TokenKind.Integer:
            case TokenKind.Float:
                return new ConstExpr(token.Number) { Line = token.Line };
            case TokenKind.Operator when token.Value == "(":
                if (SkipOperator(")"))
                {
                    return new ListExpr([], isTuple: true) { Line = token.Line };
                }

                Expr inner = ParseTuple(withCondExpr: true);
                Expect(TokenKind.Operator, ")");
                return inner;
            case TokenKind.Operator when token.Value == "[":
                var items = new List<Expr>();
                while (!Current.IsOperator("]"))
                {
                    if (items.Count > 0)
                    {
                        Expect(TokenKind.Operator, ",");
                        if (Current.IsOperator("]"))
                        {
                            break;
                        }
                    }

                    items.Add(ParseExpression(withCondExpr: true));
                }

                Expect(TokenKind.Operator, "]");
                return new ListExpr([.. items], isTuple: false) { Line = token.Line };
            case TokenKind.Operator when token.Value == "{":
                var keys = new List<Expr>();
                var values = new List<Expr>();
                while (!Current.IsOperator("}"))
                {
                    if (keys.Count > 0)
                    {
                        Expect(TokenKind.Operator, ",");
                        if (Current.IsOperator("}"))
                        {
                            break;
                        }
                    }

                    keys.Add(ParseExpression(withCondExpr: true));
                    Expect(TokenKind.Operator, ":");
                    values.Add(ParseExpression(withCondExpr: true));
                }

                Expect(TokenKind.Operator, "}");
                return new DictExpr([.. keys], [.. values]) { Line = token.Line };
            default:
                throw ChatTemplateException.Syntax($"unexpected {token.Describe()}", token.Line);
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            Token token = Current;
            if (token.IsOperator("."))
            {
                Advance();
                Token attribute = Advance();
                node = attribute.Kind switch
                {
                    TokenKind.Name => new AttrExpr(node, attribute.Value) { Line = token.Line },
                    TokenKind.Integer => new ItemExpr(node, new ConstExpr(attribute.Number)) { Line = token.Line },
                    _ => throw ChatTemplateException.Syntax($"expected name or number after '.', got {attribute.Describe()}", attribute.Line),
                };
            }
            else if (token.IsOperator("["))
            {
                Advance();
                node = ParseSubscript(node, token.Line);
            }
            else if (token.IsOperator("("))
            {
                node = new CallExpr(node, ParseCallArguments()) { Line = token.Line };
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseSubscript(Expr target, int line)
    {
        Expr?[] parts = new Expr?[3];
        int part = 0;
        bool isSlice = false;
        while (!Current.IsOperator("]"))
        {
            if (SkipOperator(":"))
            {
                isSlice = true;
                if (++part > 2)
                {
                    throw ChatTemplateException.Syntax("too many ':' in a slice", line);
                }

                continue;
            }

            if (parts[part] is not null)
            {
                throw ChatTemplateException.Syntax($"expected ']' or ':', got {Current.Describe()}", Current.Line);
            }

            parts[part] = ParseExpression(withCondExpr: true);
        }

        Expect(TokenKind.Operator, "]");
        if (isSlice)
        {
            return new SliceExpr(target, parts[0], parts[1], parts[2]) { Line = line };
        }

        return parts[0] is { } key ? new ItemExpr(target, key) { Line = line } : throw ChatTemplateException.Syntax("expected a subscript expression", line);
    }

    private Arguments ParseCallArguments()
    {
        Expect(TokenKind.Operator, "(");
        var positional = new List<Expr>();
        var names = new List<string>();
        var named = new List<Expr>();
        while (!Current.IsOperator(")"))
        {
            if (positional.Count + names.Count > 0)
            {
                Expect(TokenKind.Operator, ",");
                if (Current.IsOperator(")"))
                {
                    break;
                }
            }

            if (Current.IsOperator("*") || Current.IsOperator("**"))
            {
                throw ChatTemplateException.Syntax("*args and **kwargs in calls are not supported", Current.Line);
            }

            if (Current.Kind == TokenKind.Name && Peek().IsOperator("="))
            {
                names.Add(Advance().Value);
                Advance();
                named.Add(ParseExpression(withCondExpr: true));
                continue;
            }

            if (names.Count > 0)
            {
                throw ChatTemplateException.Syntax("positional argument follows keyword argument", Current.Line);
            }

            positional.Add(ParseExpression(withCondExpr: true));
        }

        Expect(TokenKind.Operator, ")");
        return positional.Count == 0 && names.Count == 0 ? Arguments.None : new Arguments([.. positional], [.. names], [.. named]);
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (SkipOperator("|"))
            {
                node = ParseFilter(node);
            }
            else if (Current.IsName("is"))
            {
                node = ParseTest(node);
            }
            else if (Current.IsOperator("("))
            {
                node = new CallExpr(node, ParseCallArguments()) { Line = Current.Line };
            }
            else
            {
                return node;
            }
        }
    }

    private FilterExpr ParseFilter(Expr? operand)
    {
        Token nameToken = Expect(TokenKind.Name);
        string name = nameToken.Value;
        while (Current.IsOperator(".") && Peek().Kind == TokenKind.Name)
        {
            Advance();
            name += "." + Advance().Value;
        }

        if (!Filters.ByName.TryGetValue(name, out FilterFunction? function))
        {
            ReportUnknown("filter", name, nameToken.Line);
            string message = $"TemplateRuntimeError: No filter named '{name}' found.";
            function = (_, _, _) => throw ChatTemplateException.Runtime(message);
        }

        Arguments arguments = Current.IsOperator("(") ? ParseCallArguments() : Arguments.None;
        return new FilterExpr(operand, name, function, arguments) { Line = nameToken.Line };
    }

    private Expr ParseTest(Expr operand)
    {
        Token isToken = Advance();
        bool negated = SkipName("not");
        Token nameToken = Expect(TokenKind.Name);
        string name = nameToken.Value;
        while (Current.IsOperator(".") && Peek().Kind == TokenKind.Name)
        {
            Advance();
            name += "." + Advance().Value;
        }

        if (!Tests.ByName.TryGetValue(name, out TestFunction? function))
        {
            ReportUnknown("test", name, nameToken.Line);
            string message = $"TemplateRuntimeError: No test named '{name}' found.";
            function = (_, _, _) => throw ChatTemplateException.Runtime(message);
        }

        Arguments arguments = Arguments.None;
        Token next = Current;
        if (next.IsOperator("("))
        {
            arguments = ParseCallArguments();
        }
        else if ((next.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                || next.IsOperator("(") || next.IsOperator("[") || next.IsOperator("{"))
            && !next.IsName("else") && !next.IsName("or") && !next.IsName("and"))
        {
            if (next.IsName("is"))
            {
                throw ChatTemplateException.Syntax("You cannot chain multiple tests with is", next.Line);
            }

            Expr argument = ParsePostfix(ParsePrimary());
            arguments = new Arguments([argument], [], []);
        }

        return new TestExpr(operand, name, function, arguments, negated) { Line = isToken.Line };
    }
}
