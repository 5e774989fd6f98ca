// Licensed under the MIT License. See LICENSE in the repository root.

namespace InferenceServer.Templating.Internal;

/// <summary>Jinja2's built-in tests (<c>is defined</c>, <c>is none</c>, <c>is mapping</c>, <c>is equalto</c>...).</summary>
internal static class Tests
{
    /// <summary>The tests by name.</summary>
    public static readonly Dictionary<string, TestFunction> ByName = new(StringComparer.Ordinal)
    {
        ["defined"] = static (_, v, _) => v is not Undefined,
        ["undefined"] = static (_, v, _) => v is Undefined,
        ["none"] = static (_, v, _) => v is null,
        ["boolean"] = static (_, v, _) => v is bool,
        ["true"] = static (_, v, _) => v is true,
        ["false"] = static (_, v, _) => v is false,
        ["string"] = static (_, v, _) => v is string,
        ["mapping"] = static (_, v, _) => v is PyDict,
        ["number"] = static (_, v, _) => PyOps.IsNumber(v),
        ["integer"] = static (_, v, _) => v is long,
        ["float"] = static (_, v, _) => v is double,
        ["iterable"] = static (_, v, _) => v is string or PyList or PyDict or Undefined,
        ["sequence"] = static (_, v, _) => v is string or PyList or PyDict or Undefined,
        ["callable"] = static (_, v, _) => v is ICallable or Undefined,
        ["odd"] = static (_, v, _) => PyOps.AreEqual(PyOps.Modulo(v, 2L), 1L),
        ["even"] = static (_, v, _) => PyOps.AreEqual(PyOps.Modulo(v, 2L), 0L),
        ["divisibleby"] = static (_, v, a) => PyOps.AreEqual(PyOps.Modulo(v, a.Required(0, "num", "divisibleby")), 0L),
        ["lower"] = static (_, v, _) => Methods.IsLower(PyFormat.Str(v)),
        ["upper"] = static (_, v, _) => Methods.IsUpper(PyFormat.Str(v)),
        ["escaped"] = static (_, _, _) => false,
        ["sameas"] = static (_, v, a) => SameAs(v, a.Required(0, "other", "sameas")),
        ["in"] = static (_, v, a) => PyOps.Contains(a.Required(0, "seq", "in"), v),
        ["filter"] = static (_, v, _) => v is string s && Filters.ByName.ContainsKey(s),
        ["test"] = static (_, v, _) => v is string s && ByName!.ContainsKey(s),
        ["eq"] = Equal,
        ["equalto"] = Equal,
        ["=="] = Equal,
        ["ne"] = static (_, v, a) => !PyOps.AreEqual(v, a.Required(0, "other", "ne")),
        ["!="] = static (_, v, a) => !PyOps.AreEqual(v, a.Required(0, "other", "ne")),
        ["lt"] = static (_, v, a) => PyOps.Compare(v, a.Required(0, "other", "lt"), "<") < 0,
        ["lessthan"] = static (_, v, a) => PyOps.Compare(v, a.Required(0, "other", "lt"), "<") < 0,
        ["<"] = static (_, v, a) => PyOps.Compare(v, a.Required(0, "other", "lt"), "<") < 0,
        ["le"] = static (_, v, a) => PyOps.Compare(v, a.Required(0, "other", "le"), "<=") <= 0,
        ["<="] = static (_, v, a) => PyOps.Compare(v, a.Required(0, "other", "le"), "<=") <= 0,
        ["gt"] = static (_, v, a) => PyOps.Compare(v, a.Required(0, "other", "gt"), ">") > 0,
        ["greaterthan"] = static (_, v, a) => PyOps.Compare(v, a.Required(0, "other", "gt"), ">") > 0,
        [">"] = static (_, v, a) => PyOps.Compare(v, a.Required(0, "other", "gt"), ">") > 0,
        ["ge"] = static (_, v, a) => PyOps.Compare(v, a.Required(0, "other", "ge"), ">=") >= 0,
        [">="] = static (_, v, a) => PyOps.Compare(v, a.Required(0, "other", "ge"), ">=") >= 0,
    };

    private static bool Equal(RenderState state, object? value, CallArgs args) => PyOps.AreEqual(value, args.Required(0, "other", "eq"));

    private static bool SameAs(object? a, object? b) => a switch
    {
        null => b is null,
        bool x => b is bool y && x == y,
        long x => b is long y && x == y,
        string x => b is string y && (ReferenceEquals(x, y) || (x.Length <= 1 && x == y)),
        _ => ReferenceEquals(a, b),
    };
}
