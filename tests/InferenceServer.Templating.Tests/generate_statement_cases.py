#!/usr/bin/env python3
"""Regenerates StatementCases.json: random template programs (text with spaces, tabs and newlines; if/elif/else,
for with loop variables, else and filters, set, namespace assignment, macros, comments, raw; every tag with random
'-'/'+' whitespace control) rendered by Jinja2 in transformers' environment. Exercises the lexer's whitespace rules
(trim_blocks, lstrip_blocks) and scoping. Run: python3 generate_statement_cases.py (needs jinja2 3.1)."""
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

VARIABLES = {"items": ["a", "b", "c"], "nums": [3, 0, 5], "flag": True, "off": False, "name": "Ann",
             "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
TEXT = ["x", "hello", " ", "  ", "\t", "\n", "\n\n", "  \n", "\n  ", " \t\n", "-", "+", "} ", " {", "%", "#"]
CONDS = ["flag", "off", "not flag", "x", "x is defined and x > 1", "loop is defined and loop.first", "items|length > 2", "name == 'Ann'",
         "ns.n > 1", "y is defined", "msgs[0].role == 'user'"]
EXPRS = ["x", "y", "name", "loop.index if loop is defined", "ns.n", "items|join(',')", "x ~ '!'", "nums|sum",
         "m.role if m is defined", "loop.last if loop is defined else '-'", "caller is defined", "(x or 0) + 1", "item",
         "y|default('d')", "a if a is defined", "b"]


def ws(rng):
    return rng.choice(["", "", "-", "+"])


def tag(rng, body):
    left = rng.choice(["", "", "-", "+"])
    right = rng.choice(["", "", "-", "+"])
    return "{%" + left + " " + body + " " + right + "%}"


def text(rng):
    return "".join(rng.choice(TEXT) for _ in range(rng.randint(0, 3)))


def block(rng, depth):
    parts = []
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        parts.append(text(rng))
        if depth <= 0 or r < 0.3:
            left = rng.choice(["", "", "-"])
            right = rng.choice(["", "", "-"])
            parts.append("{{" + left + " " + rng.choice(EXPRS) + " " + right + "}}")
        elif r < 0.45:
            parts.append(tag(rng, "if " + rng.choice(CONDS)) + block(rng, depth - 1))
            if rng.random() < 0.4:
                parts.append(tag(rng, "elif " + rng.choice(CONDS)) + block(rng, depth - 1))
            if rng.random() < 0.4:
                parts.append(tag(rng, "else") + block(rng, depth - 1))
            parts.append(tag(rng, "endif"))
        elif r < 0.62:
            target, it = rng.choice([("item", "items"), ("x", "nums"), ("m", "msgs"), ("x", "range(3)"), ("item", "[]")])
            cond = " if " + target + (" != 0" if target == "x" else "") if rng.random() < 0.2 else ""
            parts.append(tag(rng, f"for {target} in {it}{cond}") + block(rng, depth - 1))
            if rng.random() < 0.25:
                parts.append(tag(rng, "else") + block(rng, depth - 1))
            parts.append(tag(rng, "endfor"))
        elif r < 0.72:
            parts.append(tag(rng, rng.choice(["set x = 2", "set y = 'why'", "set x = x + 1 if x is defined else 1",
                                              "set ns.n = ns.n + 1", "set name = name|upper"])))
        elif r < 0.78:
            parts.append(tag(rng, "set y") + block(rng, depth - 1) + tag(rng, "endset"))
        elif r < 0.84:
            parts.append(tag(rng, "macro mac(a, b=2)") + block(rng, depth - 1) + tag(rng, "endmacro"))
            parts.append("{{" + ws(rng).replace("+", "") + " mac(1) }}")
        elif r < 0.9:
            parts.append("{#" + rng.choice(["", "-"]) + " note " + rng.choice(["", "-"]) + "#}")
        elif r < 0.95:
            parts.append(tag(rng, "raw") + text(rng) + "{{ raw }}" + text(rng) + tag(rng, "endraw"))
        else:
            parts.append(tag(rng, "filter upper") + block(rng, depth - 1) + tag(rng, "endfilter"))
    parts.append(text(rng))
    return "".join(parts)


rng = random.Random(int(os.environ.get("SEED", "42")))
cases = []
while len(cases) < int(os.environ.get("COUNT", "600")):
    source = "{% set ns = namespace(n=0) %}" + block(rng, 3)
    if rng.random() < 0.3:
        source += "\n"
    result = render(source, copy.deepcopy(VARIABLES))
    if "error" in result:
        result = {"error": {"kind": result["error"]["kind"], "type": result["error"]["type"], "message": result["error"]["message"]}}
    cases.append({"template": source, **result})

with open(os.environ.get("OUT", os.path.join(HERE, "StatementCases.json")), "w", encoding="utf-8") as f:
    json.dump({"variables": VARIABLES, "cases": cases}, f, ensure_ascii=False, indent=0)
    f.write("\n")
print(sum("output" in c for c in cases), "outputs,", sum("error" in c for c in cases), "errors")
