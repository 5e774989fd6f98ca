#!/usr/bin/env python3
"""Batch invariance of greedy decoding: each of N prompts sent REPEATS times within one run at a concurrency, and the
share of prompts whose REPEATS greedy outputs all agree (issue 19: 8/8 at concurrency 1, 14/64 at 64, 58/256 at 256
on an H100 before --deterministic).

  python3 invariance.py URL OUT.json --concurrency C [--prompts N (= max(8, C))] [--repeats 4] [--tokens 32]
                        [--input-len 64] [--vocab 128000] [--seed 7] [--timeout 120]

The N x REPEATS requests are shuffled (seeded) so that the repeats of a prompt land in different batches, and kept
C in flight by C worker threads. Greedy (temperature 0), ignore_eos, token ids back (return_token_ids).
"""
import argparse
import concurrent.futures
import json
import random
import sys
import time
import urllib.error
import urllib.request


def complete(url, prompt, tokens, timeout):
    body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0, "ignore_eos": True, "return_token_ids": True}
    request = urllib.request.Request(url.rstrip("/") + "/v1/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)["choices"][0]["token_ids"]
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"HTTP {error.code}: {error.read()[:300]!r}") from error


def first_difference_at(repeats):
    """The first token position where the repeats' outputs differ (None when they agree)."""
    length = max(len(x) for x in repeats)
    for i in range(length):
        if any(i >= len(x) or x[i] != repeats[0][i] for x in repeats if i < len(repeats[0])) or i >= len(repeats[0]):
            return i
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--prompts", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=128000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    prompts_count = args.prompts or max(8, args.concurrency)

    generator = random.Random(args.seed)
    prompts = [[generator.randrange(10, args.vocab) for _ in range(args.input_len)] for _ in range(prompts_count)]
    order = [(p, r) for p in range(prompts_count) for r in range(args.repeats)]
    generator.shuffle(order)
    outputs = [[None] * args.repeats for _ in range(prompts_count)]
    errors = []
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = {pool.submit(complete, args.url, prompts[p], args.tokens, args.timeout): (p, r) for p, r in order}
        for future in concurrent.futures.as_completed(futures):
            p, r = futures[future]
            try:
                outputs[p][r] = future.result()
            except Exception as error:  # noqa: BLE001 - counted, the measurement goes on
                errors.append(f"prompt {p} repeat {r}: {type(error).__name__}: {error}")
    seconds = time.time() - started
    complete_prompts = [o for o in outputs if all(x is not None for x in o)]
    agreeing = sum(1 for o in complete_prompts if all(x == o[0] for x in o))
    # Where the repeats of a disagreeing prompt first part: position 0 is the prompt step's token (prefill), later ones
    # decode steps; says which kind of step depends on the batch.
    first = [i for i in (first_difference_at(o) for o in complete_prompts) if i is not None]
    first_difference = {"0": sum(1 for i in first if i == 0), "1-3": sum(1 for i in first if 1 <= i <= 3),
                        "4+": sum(1 for i in first if i >= 4)}
    # Each disagreeing prompt's repeats that differ from its most common output, by the place they had in the sending
    # order (0 = the first request sent): at concurrency 1 a first-use effect (the first steps of a fresh server, before
    # its decode graphs are captured) shows as small send indices.
    sent_at = {pr: i for i, pr in enumerate(order)}
    disagreeing = []
    for p, o in enumerate(outputs):
        if any(x is None for x in o) or all(x == o[0] for x in o):
            continue
        majority = max(o, key=o.count)
        disagreeing.append({"prompt": p, "first_difference": first_difference_at(o),
                            "odd_repeats_sent_at": sorted(sent_at[(p, r)] for r in range(args.repeats) if o[r] != majority)})
    result = {
        "label": args.label,
        "concurrency": args.concurrency,
        "prompts": prompts_count,
        "repeats": args.repeats,
        "tokens": args.tokens,
        "input_len": args.input_len,
        "complete": len(complete_prompts),
        "agreeing": agreeing,
        "rate": agreeing / len(complete_prompts) if complete_prompts else None,
        "seconds": round(seconds, 2),
        "output_tokens_per_s": round(len(complete_prompts) * args.repeats * args.tokens / seconds, 1) if seconds > 0 else None,
        "first_difference": first_difference,
        "disagreeing": disagreeing[:32],
        "errors": errors[:10],
        "error_count": len(errors),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"invariance {args.label} c={args.concurrency}: {agreeing}/{len(complete_prompts)} prompts gave the same "
          f"{args.tokens} greedy tokens all {args.repeats} times ({len(errors)} failed requests, {seconds:.1f} s); "
          f"disagreeing prompts first part at token 0 / 1-3 / 4+: {first_difference['0']} / {first_difference['1-3']} / "
          f"{first_difference['4+']}" + (f"; odd repeats' places in the sending order (of {len(order)}): "
                                         + ", ".join(str(d["odd_repeats_sent_at"]) for d in disagreeing[:8]) if disagreeing else ""),
          flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
