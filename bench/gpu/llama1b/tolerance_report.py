#!/usr/bin/env python3
"""The teacher-forced tolerance table (issue 16): each server's logprobs against transformers fp32.

  python3 tolerance_report.py HF.json MODE=TEACHER.json [MODE=TEACHER.json ...]

Per server and prompt, over the continuation's positions (every one conditioned on the fp32 reference tokens): the
largest and mean |logprob(ref token) - fp32 logprob(ref token)|, how many positions keep the reference token as the
server's argmax, and at those that do not, the fp32 top-2 logit gap (a flip where the reference is that close to a tie
is within the numeric tolerance). The first server (fused fp16, normally) sets the tolerance: a split server is within
it when its largest and mean errors are no worse than 2x the fused path's and every flip it adds is at a near tie.
"""
import json
import sys


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        hf = json.load(f)
    servers = []
    for argument in sys.argv[2:]:
        mode, path = argument.split("=", 1)
        try:
            with open(path) as f:
                servers.append((mode, json.load(f)))
        except OSError as error:
            print(f"({mode}: no teacher-forced results: {error})")
    print("| server | prompt | positions | max abs d-logprob | mean abs d-logprob | ref is argmax | fp32 top-2 gap at flips |")
    print("|---|---:|---:|---:|---:|---:|---|")
    summary = {}
    for mode, data in servers:
        worst, total, count = 0.0, 0.0, 0
        for index, (case, reference) in enumerate(zip(data["cases"], hf["cases"])):
            if "error" in case:
                print(f"| {mode} | {index} | error | {case['error'][:80]} | | | |")
                continue
            deltas = [abs(a - b) for a, b in zip(case["ref_logprobs"], reference["ref_logprobs"])]
            kept = [abs(top - ref) < 1e-6 for top, ref in zip(case["top_logprobs"], case["ref_logprobs"])]
            flips = [f"{reference['top2_gap'][i]:.4f}" for i, ok in enumerate(kept) if not ok]
            worst = max(worst, max(deltas))
            total += sum(deltas)
            count += len(deltas)
            print(f"| {mode} | {index} ({len(reference['prompt'])} tokens) | {len(deltas)} | {max(deltas):.4f} | "
                  f"{sum(deltas) / len(deltas):.4f} | {sum(kept)}/{len(kept)} | {', '.join(flips) or '-'} |")
        if count:
            summary[mode] = (worst, total / count)
    if servers and servers[0][0] in summary:
        base_mode = servers[0][0]
        base = summary[base_mode]
        print()
        for mode, (worst, mean) in summary.items():
            ratio_max = worst / base[0] if base[0] > 0 else float("inf")
            ratio_mean = mean / base[1] if base[1] > 0 else float("inf")
            print(f"- {mode}: max {worst:.4f} ({ratio_max:.2f}x {base_mode}), mean {mean:.4f} ({ratio_mean:.2f}x {base_mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
