#!/usr/bin/env python3
"""Greedy tokens of the MLA benchmark model: transformers fp32 (with top-2 margins) against the server.

  python3 greedy_check.py reference CHECKPOINT OUT.json [--steps 32]
  python3 greedy_check.py server URL REFERENCE.json OUT.json [--tolerance 0.05]

reference: loads CHECKPOINT in fp32 on cuda (sdpa) and decodes three fixed prompts (16, 64 and 200 token ids in
[10, 102400), Python's own generator) by argmax over the dynamic cache, recording each step's top-2 logit margin.
Then, to measure what half precision itself does to these margins, it frees the fp32 model, loads the checkpoint
again in fp16 and in bf16 (--half) and runs each prompt with the fp32 tokens teacher-forced (one pass): per step, the
half-precision model's argmax and how far it moves the fp32 top-2 margin (|margin_half - margin_fp32| over the fp32
top-2 tokens): transformers' own half-precision noise at that very step.
server: sends the same prompts to the server (greedy, ignore_eos, token ids back) and compares. Equal tokens are
compared on; the first difference ends the comparison: it is allowed at a step whose fp32 margin is below
--tolerance, or below what transformers' own half precision moved that step's margin, or where transformers' own
half-precision argmax differs from fp32 too; anywhere else it is a mismatch. The steps compared are reported.
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


def load(checkpoint, dtype):
    """The checkpoint in dtype, loaded straight onto the GPU (device_map): the 27-layer V2-Lite shape in fp32 is 63 GB,
    which beside its 31 GB bf16 checkpoint in /dev/shm did not fit the 128 GB host when loaded there first (killed)."""
    import transformers

    dtype_argument = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    kwargs = {dtype_argument: dtype, "attn_implementation": "sdpa"}
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, device_map="cuda", **kwargs)
    except (ImportError, ValueError) as error:  # device_map needs accelerate on transformers 4
        print(f"device_map unavailable ({error}); loading on the host first", flush=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, **kwargs).to("cuda")
    return model.eval()


def reference(args):
    import torch
    import transformers

    model = load(args.checkpoint, torch.float32)
    cases = []
    with torch.no_grad():
        for prompt in prompts():
            out = model(input_ids=torch.tensor([prompt], device="cuda"), use_cache=True)
            tokens, margins, seconds = [], [], []
            for step in range(args.steps):
                logits = out.logits[0, -1].float()
                top = torch.topk(logits, 2)
                token = int(torch.argmax(logits))
                tokens.append(token)
                margins.append(float(top.values[0] - top.values[1]))
                seconds.append(int(top.indices[1]))
                if step + 1 < args.steps:
                    out = model(input_ids=torch.tensor([[token]], device="cuda"), past_key_values=out.past_key_values, use_cache=True)
            cases.append(dict(prompt_len=len(prompt), tokens=tokens, top2_margin=margins, runner_up=seconds))
            print(f"reference fp32, {len(prompt)}-token prompt: {tokens} (smallest margin {min(margins):.4g})", flush=True)
    del model, out
    torch.cuda.empty_cache()
    for name in [h for h in args.half.split(",") if h]:
        half = load(args.checkpoint, getattr(torch, name))
        with torch.no_grad():
            for prompt, case in zip(prompts(), cases):
                ids = prompt + case["tokens"][:-1]
                logits = half(input_ids=torch.tensor([ids], device="cuda")).logits[0, len(prompt) - 1:].float()
                steps = range(len(case["tokens"]))
                first = [case["tokens"][i] for i in steps]
                second = [case["runner_up"][i] for i in steps]
                moved = [abs(float(logits[i, first[i]] - logits[i, second[i]]) - case["top2_margin"][i]) for i in steps]
                argmax = [int(torch.argmax(logits[i])) for i in steps]
                case.setdefault("half", {})[name] = dict(margin_moved=moved, argmax=argmax)
                flips = sum(a != t for a, t in zip(argmax, first))
                print(f"transformers {name}, {len(prompt)}-token prompt, fp32 tokens forced: argmax differs at {flips} of "
                      f"{len(first)} steps; margin moved by up to {max(moved):.4g} (median {sorted(moved)[len(moved) // 2]:.4g})", flush=True)
        del half
        torch.cuda.empty_cache()
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
                margin = case["top2_margin"][i]
                half = case.get("half", {})
                moved = max((h["margin_moved"][i] for h in half.values()), default=0.0)
                flipped = [name for name, h in half.items() if h["argmax"][i] != e]
                if margin < args.tolerance:
                    verdict = f"equal up to step {i}, where the margin {margin:.3g} < {args.tolerance}"
                elif flipped:
                    verdict = (f"equal up to step {i} (margin {margin:.3g}), where transformers' own {'/'.join(flipped)} "
                               f"picks another token than fp32 too")
                elif margin <= moved:
                    verdict = (f"equal up to step {i}, where the margin {margin:.3g} is within what transformers' own "
                               f"half precision moves it ({moved:.3g})")
                else:
                    verdict = f"MISMATCH at step {i} (margin {margin:.3g}; transformers' half precision moves it by {moved:.3g})"
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
    r.add_argument("--half", default="float16,bfloat16", help="half-precision dtypes whose own noise is measured")
    s = sub.add_parser("server")
    s.add_argument("url")
    s.add_argument("reference")
    s.add_argument("out")
    s.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()
    return reference(args) if args.command == "reference" else server(args)


if __name__ == "__main__":
    sys.exit(main())
