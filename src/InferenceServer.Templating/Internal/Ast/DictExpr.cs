// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal.Ast;

/// <summary>A dict literal <c>{'a': 1}</c>.</summary>
internal sealed class DictExpr(Expr[] keys, Expr[] values) : Expr
{
    /// <summary>The key expressions.</summary>
    public Expr[] Keys { get; } = keys;

    /// <summary>The value expressions, parallel to <see cref="Keys"/>.</summary>
    public Expr[] Values { get; } = values;

    /// <inheritdoc/>
    public override object? Evaluate(RenderState state, Scope scope)
    {
        var dict = new PyDict(Keys.Length);
        for (int i = 0; i < Keys.Length; i++)
        {
            object? key = Keys[i].Evaluate(state, scope);
            if (key is PyDict or PyList { IsTuple: false } or Undefined)
            {
                throw ChatTemplateException.Runtime($"TypeError: unhashable type: '{PyFormat.TypeName(key)}'");
            }

            dict.Set(key, Values[i].Evaluate(state, scope));
        }

        return dict;
    }
}
