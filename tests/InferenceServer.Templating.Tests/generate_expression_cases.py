#!/usr/bin/env python3
"""Regenerates ExpressionCases.json: random expressions over literals, variables, operators, filters, tests and
methods, printed with {{ }} and rendered by Jinja2 in transformers' environment. The C# test must print the same
text, or fail where Jinja2 failed. Run: python3 generate_expression_cases.py (needs jinja2 3.1)."""
import copy
import json
import os
import random
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ns = {}
with open(os.path.join(HERE, "generate_jinja_cases.py"), encoding="utf-8") as f:
    exec(f.read().split("cases = []")[0], ns)
render = ns["render"]
warnings.simplefilter("ignore")

VARIABLES = {
    "i": 7, "n": -3, "z": 0, "f": 2.5, "g": -0.125, "big": 10 ** 15, "t": True, "no": False, "nil": None,
    "s": "Hello, World", "e": "", "u": "héllo 🙂 日本", "ws": "  padded\t\n", "num": "42", "csv": "a,b,,c",
    "l": [3, 1, 2], "ls": ["b", "A", "c"], "mixed": [1, "a", None, True, 2.5], "empty": [],
    "d": {"b": 1, "a": [1, 2], "c": {"x": None}}, "msg": {"role": "user", "content": "hi"},
    "msgs": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}],
}

ATOMS = ["i", "n", "z", "f", "g", "big", "t", "no", "nil", "s", "e", "u", "ws", "num", "csv", "l", "ls", "mixed", "empty",
         "d", "msg", "msgs", "missing", "1", "0", "-2", "3.0", "0.1", "1e3", "'x'", "'ab'", "\"q'\"", "true", "false", "none",
         "[1, 2]", "[]", "{'k': 1}", "{}", "(1,)", "('a', 'b')", "msg.role", "msgs[1]", "msgs[-1].content", "d.a", "d['c']",
         "l[0]", "s[1:4]", "s[::-1]", "l[1:]", "u[0]", "msgs|length", "d.missing", "loop"]
BINARY = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "and", "or"]
FILTERS = ["trim", "upper", "lower", "title", "capitalize", "length", "count", "first", "last", "string", "int", "float", "abs",
           "list", "sort", "unique|list", "reverse|list", "tojson", "tojson(indent=2)", "join", "join(', ')", "default('D')",
           "default('D', true)", "items|list", "dictsort", "sum", "max", "min", "round", "round(1)", "wordcount", "center(12)",
           "indent(2)", "e", "safe", "replace('l', 'L')", "batch(2)|list", "select|list", "reject|list", "select('odd')|list",
           "map('string')|list", "map(attribute='role')|list", "selectattr('role', 'equalto', 'user')|list", "truncate(5)",
           "format", "d", "pprint"]
TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "mapping", "iterable", "sequence",
         "odd", "even", "true", "false", "lower", "upper", "callable", "equalto 1", "divisibleby 2", "in [1, 'x']", "gt 1", "eq 'x'"]
METHODS = ["strip()", "upper()", "lower()", "split()", "split(',')", "startswith('H')", "endswith('d')", "replace('o', '0')",
           "title()", "find('o')", "count('l')", "get('role')", "get('x', 'dflt')", "items()|list", "keys()|list", "values()|list",
           "lstrip()", "rstrip()", "capitalize()", "isdigit()", "zfill(5)", "index(1)", "count(1)"]


def expr(rng, depth):
    r = rng.random()
    if depth <= 0 or r < 0.3:
        return rng.choice(ATOMS)
    if r < 0.55:
        return f"({expr(rng, depth - 1)} {rng.choice(BINARY)} {expr(rng, depth - 1)})"
    if r < 0.72:
        return f"{expr(rng, depth - 1)}|{rng.choice(FILTERS)}"
    if r < 0.82:
        return f"({expr(rng, depth - 1)} is {rng.choice(['', 'not '])}{rng.choice(TESTS)})"
    if r < 0.9:
        return f"{rng.choice(ATOMS)}.{rng.choice(METHODS)}"
    if r < 0.95:
        return f"({expr(rng, depth - 1)} if {expr(rng, depth - 1)} else {expr(rng, depth - 1)})"
    return f"(not {expr(rng, depth - 1)})"


rng = random.Random(int(os.environ.get("SEED", "99")))
cases = []
seen = set()
while len(cases) < int(os.environ.get("COUNT", "700")):
    source = "{{ " + expr(rng, int(os.environ.get("DEPTH", "3"))) + " }}"
    if source in seen:
        continue
    seen.add(source)
    # Some Jinja2 filters mutate their input (indent does `s += "\n"`, which extends a list): render on a copy.
    result = render(source, copy.deepcopy(VARIABLES))
    if "error" in result:
        result = {"error": {"kind": result["error"]["kind"], "type": result["error"]["type"], "message": result["error"]["message"]}}
    cases.append({"template": source, **result})

with open(os.environ.get("OUT", os.path.join(HERE, "ExpressionCases.json")), "w", encoding="utf-8") as f:
    json.dump({"variables": VARIABLES, "cases": cases}, f, ensure_ascii=False, indent=0)
    f.write("\n")
print(sum("output" in c for c in cases), "outputs,", sum("error" in c for c in cases), "errors")
