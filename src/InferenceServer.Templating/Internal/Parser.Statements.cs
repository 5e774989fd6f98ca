// Licensed under the MIT License. See LICENSE in the repository root.

using InferenceServer.Templating.Internal.Ast;

namespace InferenceServer.Templating.Internal;

/// <summary>The statements: <c>if</c>, <c>for</c>, <c>set</c>, <c>macro</c>, <c>call</c>, <c>filter</c>, <c>with</c>, loop controls.</summary>
internal sealed partial class Parser
{
    private static readonly HashSet<string> RefusedTags = ["include", "import", "from", "extends", "block"];

    private Stmt? ParseStatement()
    {
        Token keyword = Current;
        if (keyword.Kind != TokenKind.Name)
        {
            throw ChatTemplateException.Syntax($"tag name expected, got {keyword.Describe()}", keyword.Line);
        }

        Enter(keyword.Line);
        try
        {
            Advance();
            switch (keyword.Value)
            {
                case "if":
                    return ParseIf(keyword.Line);
                case "for":
                    return ParseFor(keyword.Line);
                case "set":
                    return ParseSet(keyword.Line);
                case "macro":
                    return ParseMacro(keyword.Line);
                case "call":
                    return ParseCallBlock(keyword.Line);
                case "filter":
                    return ParseFilterBlock(keyword.Line);
                case "with":
                    return ParseWith(keyword.Line);
                case "generation":
                    // transformers' {% generation %} marks assistant text for masks; it renders its body unchanged.
                    Expect(TokenKind.BlockEnd);
                    Stmt[] generated = SubparseInner(["endgeneration"], out _);
                    Expect(TokenKind.BlockEnd);
                    return new WithStmt([], [], generated) { Line = keyword.Line };
                case "break":
                case "continue":
                    if (_loopDepth == 0)
                    {
                        throw ChatTemplateException.Syntax($"'{keyword.Value}' outside of a loop", keyword.Line);
                    }

                    Expect(TokenKind.BlockEnd);
                    return new LoopControlStmt(keyword.Value == "break" ? Flow.Break : Flow.Continue) { Line = keyword.Line };
                default:
                    if (RefusedTags.Contains(keyword.Value))
                    {
                        throw ChatTemplateException.Syntax($"the '{keyword.Value}' tag is not supported: a chat template must be self-contained", keyword.Line);
                    }

                    throw ChatTemplateException.Syntax($"Encountered unknown tag '{keyword.Value}'.", keyword.Line);
            }
        }
        finally
        {
            Leave();
        }
    }

    /// <summary>A body in a new (non-soft) frame: a loop, macro, call, filter, set or with body.</summary>
    private Stmt[] SubparseInner(string[] endNames, out string? endName)
    {
        bool saved = _soft;
        _soft = false;
        try
        {
            return Subparse(endNames, out endName);
        }
        finally
        {
            _soft = saved;
        }
    }

    private IfStmt ParseIf(int line)
    {
        bool saved = _soft;
        _soft = true;
        try
        {
            return ParseIfBody(line);
        }
        finally
        {
            _soft = saved;
        }
    }

    private IfStmt ParseIfBody(int line)
    {
        var conditions = new List<Expr>();
        var bodies = new List<Stmt[]>();
        Stmt[]? otherwise = null;
        conditions.Add(ParseTuple(withCondExpr: true));
        Expect(TokenKind.BlockEnd);
        while (true)
        {
            bodies.Add(Subparse(["elif", "else", "endif"], out string? end));
            if (end == "elif")
            {
                conditions.Add(ParseTuple(withCondExpr: true));
                Expect(TokenKind.BlockEnd);
                continue;
            }

            if (end == "else")
            {
                Expect(TokenKind.BlockEnd);
                otherwise = Subparse(["endif"], out _);
            }

            Expect(TokenKind.BlockEnd);
            return new IfStmt([.. conditions], [.. bodies], otherwise) { Line = line };
        }
    }

    private ForStmt ParseFor(int line)
    {
        AssignTarget target = ParseAssignTarget(allowNamespace: false);
        Expect(TokenKind.Name, "in");
        Expr iterable = ParseTuple(withCondExpr: false, extraEnd: "recursive");
        Expr? filter = null;
        if (SkipName("if"))
        {
            filter = WithSoftness(false, () => ParseExpression(withCondExpr: true));
        }

        if (Current.IsName("recursive"))
        {
            throw ChatTemplateException.Syntax("recursive for loops are not supported", Current.Line);
        }

        Expect(TokenKind.BlockEnd);
        _loopDepth++;
        Stmt[] body = SubparseInner(["endfor", "else"], out string? end);
        _loopDepth--;
        Stmt[]? otherwise = null;
        if (end == "else")
        {
            Expect(TokenKind.BlockEnd);
            otherwise = SubparseInner(["endfor"], out _);
        }

        Expect(TokenKind.BlockEnd);
        return new ForStmt(target, iterable, filter, body, otherwise) { Line = line };
    }

    private Stmt ParseSet(int line)
    {
        AssignTarget target = ParseAssignTarget(allowNamespace: true);
        if (SkipOperator("="))
        {
            Expr value = ParseTuple(withCondExpr: true);
            Expect(TokenKind.BlockEnd);
            return new SetStmt(target, value) { Line = line };
        }

        FilterExpr[] filters = ParseFilterChain();
        Expect(TokenKind.BlockEnd);
        Stmt[] body = SubparseInner(["endset"], out _);
        Expect(TokenKind.BlockEnd);
        return new SetBlockStmt(target, body, filters) { Line = line };
    }

    private MacroStmt ParseMacro(int line)
    {
        string name = Expect(TokenKind.Name).Value;
        (string[] parameters, Expr?[] defaults) = ParseSignature();
        Expect(TokenKind.BlockEnd);
        int savedLoops = _loopDepth;
        _loopDepth = 0;
        Stmt[] body = SubparseInner(["endmacro"], out _);
        _loopDepth = savedLoops;
        SkipName(name);
        Expect(TokenKind.BlockEnd);
        return new MacroStmt(name, parameters, defaults, body) { Line = line };
    }

    private CallBlockStmt ParseCallBlock(int line)
    {
        string[] parameters = [];
        Expr?[] defaults = [];
        if (Current.IsOperator("("))
        {
            (parameters, defaults) = ParseSignature();
        }

        Expr call = ParseExpression(withCondExpr: true);
        if (call is not CallExpr callExpr)
        {
            throw ChatTemplateException.Syntax("expected a macro call after 'call'", line);
        }

        Expect(TokenKind.BlockEnd);
        int savedLoops = _loopDepth;
        _loopDepth = 0;
        Stmt[] body = SubparseInner(["endcall"], out _);
        _loopDepth = savedLoops;
        Expect(TokenKind.BlockEnd);
        return new CallBlockStmt(callExpr, parameters, defaults, body) { Line = line };
    }

    private FilterBlockStmt ParseFilterBlock(int line)
    {
        var filters = WithSoftness(false, () =>
        {
            var chain = new List<FilterExpr> { ParseFilter(null) };
            chain.AddRange(ParseFilterChain());
            return chain;
        });
        Expect(TokenKind.BlockEnd);
        Stmt[] body = SubparseInner(["endfilter"], out _);
        Expect(TokenKind.BlockEnd);
        return new FilterBlockStmt(body, [.. filters]) { Line = line };
    }

    private WithStmt ParseWith(int line)
    {
        var targets = new List<AssignTarget>();
        var values = new List<Expr>();
        while (Current.Kind != TokenKind.BlockEnd)
        {
            if (targets.Count > 0)
            {
                Expect(TokenKind.Operator, ",");
            }

            targets.Add(ParseAssignTarget(allowNamespace: false));
            Expect(TokenKind.Operator, "=");
            values.Add(ParseExpression(withCondExpr: true));
        }

        Expect(TokenKind.BlockEnd);
        Stmt[] body = SubparseInner(["endwith"], out _);
        Expect(TokenKind.BlockEnd);
        return new WithStmt([.. targets], [.. values], body) { Line = line };
    }

    private FilterExpr[] ParseFilterChain()
    {
        var filters = new List<FilterExpr>();
        while (SkipOperator("|"))
        {
            filters.Add(ParseFilter(null));
        }

        return [.. filters];
    }

    private (string[] Parameters, Expr?[] Defaults) ParseSignature()
    {
        var parameters = new List<string>();
        var defaults = new List<Expr?>();
        Expect(TokenKind.Operator, "(");
        while (!Current.IsOperator(")"))
        {
            if (parameters.Count > 0)
            {
                Expect(TokenKind.Operator, ",");
                if (Current.IsOperator(")"))
                {
                    break;
                }
            }

            Token name = Expect(TokenKind.Name);
            parameters.Add(name.Value);
            if (SkipOperator("="))
            {
                defaults.Add(ParseExpression(withCondExpr: true));
            }
            else
            {
                if (defaults.Count > 0 && defaults[^1] is not null)
                {
                    throw ChatTemplateException.Syntax("non-default argument follows default argument", name.Line);
                }

                defaults.Add(null);
            }
        }

        Expect(TokenKind.Operator, ")");
        return ([.. parameters], [.. defaults]);
    }

    /// <summary>A name, <c>ns.attr</c> (for <c>set</c>), or a comma-separated tuple of names.</summary>
    private AssignTarget ParseAssignTarget(bool allowNamespace)
    {
        var items = new List<AssignTarget>();
        bool isTuple = false;
        bool parenthesized = SkipOperator("(");
        while (true)
        {
            Token name = Expect(TokenKind.Name);
            if (name.Value is "true" or "false" or "none" or "True" or "False" or "None")
            {
                throw ChatTemplateException.Syntax($"cannot assign to '{name.Value}'", name.Line);
            }

            if (allowNamespace && SkipOperator("."))
            {
                string attribute = Expect(TokenKind.Name).Value;
                items.Add(new AssignTarget { Name = name.Value, Attribute = attribute });
            }
            else
            {
                items.Add(new AssignTarget { Name = name.Value });
            }

            if (!SkipOperator(","))
            {
                break;
            }

            isTuple = true;
            if (Current.Kind != TokenKind.Name)
            {
                break;
            }
        }

        if (parenthesized)
        {
            Expect(TokenKind.Operator, ")");
            isTuple = true;
        }

        return isTuple ? new AssignTarget { Items = [.. items] } : items[0];
    }
}
