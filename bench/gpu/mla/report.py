#!/usr/bin/env python3
"""The Markdown report of run-mla.sh from what the run left in its work folder.

  python3 report.py RUN [--json results.json]

Reads meta.txt, steps.tsv, checkpoint.json, build.log, hf.json (llama1b/hf_reference.py), greedy-server.json
(greedy_check.py) and sweep-<C>.json (the load generator) under RUN. Issue 18's goal: output tok/s at every
concurrency at least 5x transformers generate() in the same call.
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "llama1b"))
from report import levels, number, ratio, read_json, read_text, samples, step_rows  # noqa: E402

GOAL_RATIO = 5.0


def metrics(run, concurrency):
    """Mean running and waiting requests over the samples of metrics-<C>.tsv taken while requests were in the server."""
    rows = [(r[1], r[2]) for r in samples(run, concurrency) if len(r) > 2]
    rows = [r for r in rows if r[0] + r[1] > 0]
    if not rows:
        return None
    return (sum(r[0] for r in rows) / len(rows), sum(r[1] for r in rows) / len(rows), len(rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--json")
    args = parser.parse_args()
    run = args.run
    meta = dict(line.split("=", 1) for line in (read_text(os.path.join(run, "meta.txt")) or "").splitlines() if "=" in line)
    failed = {}
    sweep = levels(run, "sweep", failed)
    hf = read_json(os.path.join(run, "hf.json")) or {}
    reference = {entry["batch"]: entry for entry in hf.get("throughput", [])}
    greedy = read_json(os.path.join(run, "greedy-server.json"))
    checkpoint = read_json(os.path.join(run, "checkpoint.json")) or {}
    build = read_text(os.path.join(run, "build.log")) or ""
    kv = re.search(r"(\d+) KV bytes/token", build)
    out = []
    w = out.append

    w(f"# MLA + MoE on the paged CUDA path (issue 18), {meta.get('date', '?')}")
    w("")
    shape = meta.get("shape", "v2lite")
    described = ("DeepSeek-V2-Lite shape (MLA 512 + 64, 64 experts top-6 + 2 shared, first layer dense)" if shape == "v2lite"
                 else "dense MLA of the Llama-1B GQA shape (MLA 256 + 64, 32 heads, every MLP dense)")
    full = 27 if shape == "v2lite" else 16
    w(f"{described} with **{meta.get('layers', '?')} layers** (the full model has {full}), "
      f"random weights, {meta.get('dtype', '?')}; {checkpoint.get('parameters', '?')} parameters; "
      f"{meta.get('input_len', '?')}-token prompts, {meta.get('output_len', '?')} new tokens (ignore_eos); "
      f"CUDA graphs {meta.get('cuda_graphs', 'false (before the flag)')}, {meta.get('requests_per_conc', '2')} x concurrency requests per level.")
    if meta.get("dtype_fallback"):
        w(f"**Served in {meta['dtype_fallback']}**")
    if kv:
        layers = int(meta.get("layers", "0") or 0)
        goal = ((512 if shape == "v2lite" else 256) + 64) * layers * 2
        w(f"KV cache: {kv.group(1)} bytes/token (the builder's count); (kv_lora_rank + rope) x layers x 2 bytes = {goal}"
          f" ({ratio(int(kv.group(1)), goal) if goal else '?'}; goal <= 1.1x).")
    w("")
    w("## Output tokens/s")
    w("")
    w("| conc | ok / failed | server tok/s | transformers generate() tok/s | ratio | goal 5x | TTFT mean / p99 ms | TPOT mean ms | running / waiting (mean of /metrics) |")
    w("|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    results = []
    for c in sorted(set(sweep) | set(reference) | {int(x) for x in meta.get("levels", "").split(",") if x}):
        s = sweep.get(c)
        r = reference.get(c, {}).get("output_tokens_per_s")
        tok = s["output_throughput"] if s else None
        met = "not measured" if tok is None or r is None else ("**met**" if tok >= GOAL_RATIO * r and s["failed"] == 0 else "not met")
        counts = f"{s['successful']} / {s['failed']}" if s else "no result"
        occupancy = metrics(run, c)
        ttft = f"{number(s['ttft_ms'].get('mean'))} / {number(s['ttft_ms'].get('p99'))}" if s and s.get("ttft_ms") else ""
        tpot = number(s["tpot_ms"].get("mean")) if s and s.get("tpot_ms") else ""
        busy = f"{occupancy[0]:.1f} / {occupancy[1]:.1f} ({occupancy[2]} samples)" if occupancy else ""
        w(f"| {c} | {counts} | {number(tok)} | {number(r)} | {ratio(tok, r)} | {met} | {ttft} | {tpot} | {busy} |")
        results.append(dict(concurrency=c, server=s, reference=reference.get(c), goal_met=met, running_waiting=occupancy))
    w("")
    w("## Greedy tokens against transformers fp32")
    w("")
    if greedy:
        w(f"Tolerance: a first difference at a step whose fp32 top-2 margin is below {greedy['tolerance']} is allowed.")
        w("")
        for case in greedy["cases"]:
            w(f"- {case['prompt_len']}-token prompt: {case.get('verdict', case.get('error'))}; {case.get('compared_steps', 0)} steps compared")
    else:
        w("(no greedy comparison: see the steps)")
    w("")
    w("## Steps")
    w("")
    w("| step | status | s | detail |")
    w("|---|---|---:|---|")
    for row in step_rows(run):
        w(row)
    if failed:
        w("")
        w(f"Levels where every request failed: {failed}")
    w("")
    w("## Build (last lines)")
    w("")
    w("```")
    w("\n".join(build.splitlines()[-8:]))
    w("```")
    print("\n".join(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, levels=results, hf=hf, greedy=greedy, checkpoint=checkpoint,
                           kv_bytes_per_token=int(kv.group(1)) if kv else None), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
