#!/usr/bin/env python3
"""Sends the fixed prompts of prompts.py to the server, greedy with ignore_eos, and writes the tokens it gives.

  python3 server_greedy.py URL OUT.json

report.py compares them with hf_reference.py's bf16 and fp32 tokens (a match rate, not a pass/fail: fp16 and
bf16 round differently, and a random model's top logits are close).
"""
import json
import os
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prompts import GREEDY_TOKENS, greedy_prompts  # noqa: E402


def complete(url, prompt):
    body = {"prompt": prompt, "max_tokens": GREEDY_TOKENS, "temperature": 0, "ignore_eos": True,
            "return_token_ids": True}
    request = urllib.request.Request(url.rstrip("/") + "/v1/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"HTTP {error.code}: {error.read()[:500]!r}") from error
    return answer["choices"][0]["token_ids"]


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    url, out = sys.argv[1:]
    cases = []
    for index, prompt in enumerate(greedy_prompts()):
        try:
            cases.append({"prompt_len": len(prompt), "tokens": complete(url, prompt)})
            print(f"server greedy case {index} ({len(prompt)} prompt tokens): {cases[-1]['tokens']}", flush=True)
        except Exception as error:  # noqa: BLE001 - recorded, the benchmark goes on
            cases.append({"prompt_len": len(prompt), "error": f"{type(error).__name__}: {error}"})
            print(f"server greedy case {index} failed: {cases[-1]['error']}", flush=True)
    with open(out, "w") as f:
        json.dump({"tokens": GREEDY_TOKENS, "cases": cases}, f, indent=1)
    return 1 if any("error" in case for case in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
