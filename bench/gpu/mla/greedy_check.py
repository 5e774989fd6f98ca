#!/usr/bin/env python3
"""Greedy tokens of the MLA benchmark model: transformers fp32 (with top-2 margins) against the server.

  python3 greedy_check.py reference CHECKPOINT OUT.json [--steps 32]
  python3 greedy_check.py server URL REFERENCE.json OUT.json [--tolerance 0.05]

reference: loads CHECKPOINT in fp32 on cuda (sdpa) and decodes three fixed prompts (16, 64 and 200 token ids in
[10, 102400), Python's own generator) by argmax over the dynamic cache, recording each step's top-2 logit margin.
server: sends the same prompts to the server (greedy, ignore_eos, token ids back) and compares. Equal tokens are
compared on; the first difference ends the comparison: at a step whose fp32 margin is below --tolerance it is
allowed (bf16 may pick either token there), at a larger margin it is a mismatch. The steps compared are reported.
The exit status is 1 when any case mismatches.
"""
import argparse
import json
import random
import sys
import urllib.error
import urllib.request

VOCAB = 102400
LENGTHS = (16, 64, 200)


def prompts():
    generator = random.Random(18)
    return [[generator.randrange(10, VOCAB) for _ in range(n)] for n in LENGTHS]


def reference(args):
    import torch
    import transformers

    dtype_argument = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.checkpoint, attn_implementation="sdpa", **{dtype_argument: torch.float32}).to("cuda").eval()
    cases = []
    with torch.no_grad():
        for prompt in prompts():
            out = model(input_ids=torch.tensor([prompt], device="cuda"), use_cache=True)
            tokens, margins = [], []
            for step in range(args.steps):
                logits = out.logits[0, -1].float()
                top = torch.topk(logits, 2)
                token = int(torch.argmax(logits))
                tokens.append(token)
                margins.append(float(top.values[0] - top.values[1]))
                if step + 1 < args.steps:
                    out = model(input_ids=torch.tensor([[token]], device="cuda"), past_key_values=out.past_key_values, use_cache=True)
            cases.append(dict(prompt_len=len(prompt), tokens=tokens, top2_margin=margins))
            print(f"reference fp32, {len(prompt)}-token prompt: {tokens} (smallest margin {min(margins):.4g})", flush=True)
    with open(args.out, "w") as f:
        json.dump(dict(transformers=transformers.__version__, torch=torch.__version__, cases=cases), f)
    return 0


def complete(url, prompt, steps):
    body = {"prompt": prompt, "max_tokens": steps, "temperature": 0, "ignore_eos": True, "return_token_ids": True}
    request = urllib.request.Request(url.rstrip("/") + "/v1/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)["choices"][0]["token_ids"]
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"HTTP {error.code}: {error.read()[:500]!r}") from error


def server(args):
    with open(args.reference) as f:
        expected = json.load(f)["cases"]
    results, mismatches = [], 0
    for prompt, case in zip(prompts(), expected):
        entry = dict(prompt_len=len(prompt), expected=case["tokens"])
        try:
            actual = complete(args.url, prompt, len(case["tokens"]))
        except Exception as error:  # noqa: BLE001 - record and go on
            entry["error"] = f"{type(error).__name__}: {error}"
            mismatches += 1
            results.append(entry)
            continue
        entry["actual"] = actual
        compared, verdict = 0, "equal"
        for i, (e, a) in enumerate(zip(case["tokens"], actual)):
            if e != a:
                if case["top2_margin"][i] < args.tolerance:
                    verdict = f"equal up to step {i}, where the margin {case['top2_margin'][i]:.3g} < {args.tolerance}"
                else:
                    verdict = f"MISMATCH at step {i} (margin {case['top2_margin'][i]:.3g})"
                    mismatches += 1
                break
            compared += 1
        entry["compared_steps"] = compared
        entry["verdict"] = verdict
        print(f"{len(prompt)}-token prompt: {verdict}; {compared} steps compared", flush=True)
        results.append(entry)
    with open(args.out, "w") as f:
        json.dump(dict(tolerance=args.tolerance, cases=results, mismatches=mismatches), f)
    return 1 if mismatches else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reference")
    r.add_argument("checkpoint")
    r.add_argument("out")
    r.add_argument("--steps", type=int, default=32)
    s = sub.add_parser("server")
    s.add_argument("url")
    s.add_argument("reference")
    s.add_argument("out")
    s.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()
    return reference(args) if args.command == "reference" else server(args)


if __name__ == "__main__":
    sys.exit(main())
