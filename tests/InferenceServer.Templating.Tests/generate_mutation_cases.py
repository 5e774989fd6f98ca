#!/usr/bin/env python3
"""Regenerates MutationCases.json: the real templates of tests/fixtures/chat-templates, each mutated by a few random
edits (delete a span, copy a span elsewhere, insert a Jinja fragment), rendered by Jinja2 in transformers'
environment with one of the fixture conversations. The C# test replays the same edits and must agree: the same
output, or an error of the same kind. Run: python3 generate_mutation_cases.py (needs jinja2 3.1)."""
import json
import warnings
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures", "chat-templates")
ns = {}
with open(os.path.join(HERE, "generate_jinja_cases.py"), encoding="utf-8") as f:
    exec(f.read().split("cases = []")[0], ns)
render = ns["render"]

FRAGMENTS = ["{{", "}}", "{%", "%}", "{%-", "-%}", " if ", " else ", "{% endif %}", "{% endfor %}", " | trim", " | tojson",
             " ~ ", " + ", " and ", " or ", " not ", "(", ")", "[", "]", "'x'", "1", " is defined", " is none", "loop.index",
             "{{ messages|length }}", "{% set ns.x = 1 %}", "\n", "  ", "[1:]", "[-1]", ".strip()", ".split('a')"]

warnings.simplefilter("ignore")
rng = random.Random(1234)
families = sorted(f[: -len(".renderings.json")] for f in os.listdir(FIXTURES) if f.endswith(".renderings.json"))
cases = []
kinds = {"output": 0, "Syntax": 0, "Runtime": 0, "RaisedByTemplate": 0}
attempt = 0
while kinds["output"] < 250 and attempt < 20000:
    attempt += 1
    family = families[attempt % len(families)]
    with open(os.path.join(FIXTURES, family + ".jinja"), encoding="utf-8") as f:
        source = f.read()
    with open(os.path.join(FIXTURES, family + ".renderings.json"), encoding="utf-8") as f:
        renderings = json.load(f)
    index = rng.randrange(len(renderings["renderings"]))
    conversation = renderings["renderings"][index]
    edits = []
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(source))
        kind = rng.randrange(3)
        if kind == 0:
            length = min(rng.randint(1, 12), len(source) - at)
            edit = [at, length, ""]
        elif kind == 1:
            length = min(rng.randint(1, 12), len(source) - at)
            edit = [rng.randrange(len(source)), 0, source[at:at + length]]
        else:
            edit = [at, 0, rng.choice(FRAGMENTS)]
        source = source[: edit[0]] + edit[2] + source[edit[0] + edit[1]:]
        edits.append(edit)
    variables = dict(renderings["special_tokens"])
    variables["date_string"] = renderings["date_string"]
    variables["messages"] = conversation["messages"]
    variables["add_generation_prompt"] = conversation["kwargs"]["add_generation_prompt"]
    variables["tools"] = conversation["kwargs"].get("tools")
    variables["documents"] = None
    result = render(source, variables)
    if "error" in result:
        # Keep the kind only: messages of mangled templates are not a contract. Keep a sample of the errors.
        if sum(kinds.values()) - kinds["output"] >= 150:
            continue
        result = {"error": {"kind": result["error"]["kind"], "type": result["error"]["type"]}}
        kinds[result["error"]["kind"]] += 1
    else:
        kinds["output"] += 1
    cases.append({"family": family, "conversation": index, "edits": edits, **result})

with open(os.path.join(HERE, "MutationCases.json"), "w", encoding="utf-8") as f:
    json.dump({"seed": 1234, "cases": cases}, f, ensure_ascii=False, indent=0)
    f.write("\n")
print(kinds)
