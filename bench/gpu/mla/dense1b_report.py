#!/usr/bin/env python3
"""The Markdown report of run-dense1b-vs-gqa.sh from what the run left in its work folder.

  python3 dense1b_report.py RUN LONG_LEN LONG_OUT CONC

Reads, for gqa1b and mla1b: cache-<name>.txt (vllm:cache_config_info), metrics-<name>.tsv (lib.sh's poll_metrics during
the long level), sweep-<name>.json and long-<name>.json (the load generator), and steps.tsv. Issue 18's goals: output
tok/s at concurrency CONC within 15% of GQA, and at least 2.8x GQA's LONG_LEN-token sequences in the same cache.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "llama1b"))
from report import number, ratio, read_json, read_text, samples, step_rows  # noqa: E402


def level(run, name):
    """The one level of the load generator's report RUN/name, or None."""
    report = read_json(os.path.join(run, name))
    found = report.get("levels") if isinstance(report, dict) else None
    return found[0] if found else None


def model_row(run, name, long_len, long_out):
    cache = read_text(os.path.join(run, f"cache-{name}.txt")) or ""
    blocks = re.search(r'num_gpu_blocks="(\d+)"', cache)
    size = re.search(r'block_size="(\d+)"', cache)
    tokens = int(blocks.group(1)) * int(size.group(1)) if blocks and size else None
    polled = [(r[1], r[3]) for r in samples(run, name) if len(r) > 3]
    first_preempt = polled[0][1] if polled else 0
    before = [running for running, preempted in polled if preempted == first_preempt]
    return dict(tokens=tokens, fit=(tokens // (long_len + long_out)) if tokens else None,
                running_max=max(before) if before else None,
                preempted=(polled[-1][1] - first_preempt) if polled else None,
                sweep=level(run, f"sweep-{name}.json"), long=level(run, f"long-{name}.json"))


def goal(a, b, factor):
    return "**met**" if a and b and a >= factor * b else "not met"


def main():
    run, long_len, long_out, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    g, m = (model_row(run, name, long_len, long_out) for name in ("gqa1b", "mla1b"))
    print("# Dense MLA (1B shape) against the 1B GQA model, issue 18")
    print()
    print("Both fp16 for CUDA, CUDA graphs, the same --kv-cache-memory; random weights.")
    print()
    print("| | GQA 1B | MLA 1B | MLA / GQA | goal |")
    print("|---|---:|---:|---:|---|")
    gt = g["sweep"]["output_throughput"] if g["sweep"] else None
    mt = m["sweep"]["output_throughput"] if m["sweep"] else None
    print(f"| output tok/s at concurrency {conc} | {number(gt)} | {number(mt)} | {ratio(mt, gt)} | >= 0.85x: {goal(mt, gt, 0.85)} |")
    for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT")):
        gv = g["sweep"][key]["mean"] if g["sweep"] else None
        mv = m["sweep"][key]["mean"] if m["sweep"] else None
        print(f"| {label} mean ms at concurrency {conc} | {number(gv, 2)} | {number(mv, 2)} | {ratio(mv, gv)} | |")
    print(f"| KV pool tokens (num_gpu_blocks x block_size) | {number(g['tokens'], 0)} | {number(m['tokens'], 0)} | {ratio(m['tokens'], g['tokens'])} | |")
    print(f"| {long_len}+{long_out}-token sequences that fit the pool | {number(g['fit'], 0)} | {number(m['fit'], 0)} | {ratio(m['fit'], g['fit'])} | >= 2.8x: {goal(m['fit'], g['fit'], 2.8)} |")
    print(f"| largest running count measured ({long_len}-token prompts, before any preemption) | {number(g['running_max'], 0)} | {number(m['running_max'], 0)} | {ratio(m['running_max'], g['running_max'])} | >= 2.8x: {goal(m['running_max'], g['running_max'], 2.8)} |")
    print(f"| preemptions during the long level | {number(g['preempted'], 0)} | {number(m['preempted'], 0)} | | |")
    print()
    print("## Steps")
    print()
    print("| step | status | s | detail |")
    print("|---|---|---:|---|")
    for row in step_rows(run):
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
