#!/usr/bin/env python3
"""Puts together what run-llama1b.sh left in its work folder as one Markdown report (and one JSON file).

  python3 report.py WORKDIR [--json OUT.json] > report.md

Reads, each when present: meta.txt (key=value), steps.tsv (step, status, seconds, detail), nvidia-smi.txt,
stage-info.txt, checkpoint.json, build.log, sweep-<C>.json and ttft-<L>.json (the load generator's --json reports),
server-greedy.json and reference.json (hf_reference.py); issue 19's bandwidth.json, invariance-<label>-<C>.json,
det-<C>.json (the load generator under --deterministic) and kernels-<fused|unfused>.json. Whatever is missing is
said so in the report.
"""
import argparse
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prompts import agreement  # noqa: E402

# Issue 9's goals (output tokens/s at a concurrency) and the reference it measured before (bf16, sdpa, dynamic cache).
GOALS = {1: 430, 64: 13500, 256: 27000}
ISSUE_REFERENCE = {1: 20.8, 16: 340, 64: 1347, 256: 5469}


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def number(value, decimals=1):
    return "n/a" if value is None else f"{value:,.{decimals}f}"


def ratio(a, b):
    return "n/a" if not a or not b else f"{a / b:.2f}x"


def samples(work, name):
    """The rows of work/metrics-<name>.tsv (lib.sh's poll_metrics: seconds, running, waiting, preemptions) as floats."""
    rows = []
    for line in (read_text(os.path.join(work, f"metrics-{name}.tsv")) or "").splitlines():
        try:
            rows.append(tuple(float(x) for x in line.split("\t")))
        except ValueError:
            continue
    return rows


def step_rows(work):
    """The Markdown rows of the step table from work/steps.tsv (step, status, seconds, detail), pipes escaped."""
    rows = []
    for line in (read_text(os.path.join(work, "steps.tsv")) or "").splitlines():
        cells = (line.split("\t") + [""] * 4)[:4]
        rows.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return rows


def levels(work, prefix, failed):
    """{key: the one level of that report} for the load generator's reports named prefix-<key>.json; levels where
    every request failed go to failed instead, as {name: failed requests}."""
    found = {}
    for path in glob.glob(os.path.join(work, f"{prefix}-*.json")):
        match = re.search(rf"{prefix}-(\d+)\.json$", path)
        report = read_json(path)
        if match and report and report.get("levels"):
            level = report["levels"][0]
            if level.get("successful", 0) > 0:
                found[int(match.group(1))] = level
            else:
                failed[f"{prefix}-{match.group(1)}"] = level.get("failed", 0)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work")
    parser.add_argument("--json")
    args = parser.parse_args()
    work = args.work

    meta = {}
    for line in (read_text(os.path.join(work, "meta.txt")) or "").splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            meta[key.strip()] = value.strip()
    steps = [line.split("\t") for line in (read_text(os.path.join(work, "steps.tsv")) or "").splitlines() if line]
    all_failed = {}
    sweep = levels(work, "sweep", all_failed)
    ttft = levels(work, "ttft", all_failed)
    reference = read_json(os.path.join(work, "reference.json")) or {}
    server_greedy = read_json(os.path.join(work, "server-greedy.json")) or {}
    checkpoint = read_json(os.path.join(work, "checkpoint.json")) or {}
    ref_throughput = {e["batch"]: e for e in reference.get("throughput", [])}
    ref_ttft = {e["input_len"]: e for e in reference.get("ttft", [])}

    out = []
    w = out.append
    shape = {"8b": "Llama-3.1-8B", "tiny": "Llama-3.2-1B (TINY: 2 layers, hidden 256)"}.get(meta.get("shape", "1b"), "Llama-3.2-1B")
    w(f"# {shape}-shaped benchmark on the GPU: server ({meta.get('dtype', '?')}) vs Hugging Face generate() (bf16)")
    w("")
    w(f"- date: {meta.get('date', '?')}; staged: {(read_text(os.path.join(work, 'stage-info.txt')) or 'unknown').strip().replace(chr(10), '; ')}")
    w(f"- model: random weights, {shape} shape; "
      f"checkpoint {number(checkpoint.get('parameters'), 0)} parameters, seed {checkpoint.get('seed', '?')}, "
      f"logits std {checkpoint.get('logits_std', '?')}, median top-2 logit gap {checkpoint.get('median_top2_logit_gap', '?')}")
    w(f"- server: `{meta.get('server_command', '?')}`")
    w(f"- load: random token-id prompts (ids in [10, {meta.get('vocab', '128000')})), {meta.get('input_len', '128')} prompt tokens, "
      f"{meta.get('output_len', '128')} new tokens, greedy, ignore_eos, streamed; each level its own prompts "
      f"({meta.get('prompts_rule', '?')}), warm-up requests before each level")
    env = reference.get("env", {})
    w(f"- reference: transformers {env.get('transformers', '?')} generate(), torch {env.get('torch', '?')}, bf16, "
      f"attn {env.get('attn_implementation_used', env.get('attn_implementation', '?'))}, "
      f"cache {next(iter(ref_throughput.values()), {}).get('cache', '?')}, min_new_tokens = max_new_tokens, "
      f"one warm-up and one timed run per batch")
    w("")

    w("## Output tokens/s")
    w("")
    w("| conc | ok / failed | server tok/s | reference tok/s (batch = conc) | ratio | reference in the issue | goal | met | "
      "TTFT p50 | TTFT p99 | TPOT p50 | ITL p50 | ITL p99 |")
    w("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    concurrencies = sorted(set(sweep) | set(ref_throughput) | set(int(c) for c in meta.get("levels", "").split(",") if c))
    for c in concurrencies:
        s = sweep.get(c)
        r = ref_throughput.get(c, {}).get("output_tokens_per_s")
        tok = s["output_throughput"] if s else None
        goal = GOALS.get(c)
        met = "" if goal is None else ("not measured" if tok is None else ("**met**" if tok >= goal and s["failed"] == 0 else "not met"))
        row = [str(c), f"{s['successful']} / {s['failed']}" if s else "no result", number(tok), number(r), ratio(tok, r),
               number(ISSUE_REFERENCE.get(c)), number(goal, 0) if goal else "", met]
        if s:
            row += [number(s["ttft_ms"]["p50"]), number(s["ttft_ms"]["p99"]), number(s["tpot_ms"]["p50"], 2),
                    number(s["itl_ms"]["p50"], 2), number(s["itl_ms"]["p99"], 2)]
        else:
            row += ["", "", "", "", ""]
        w("| " + " | ".join(row) + " |")
    w("")
    w("(times in ms; server numbers are the load generator's, over HTTP with streaming; ratio = server / reference)")
    w("")

    w("## Time to first token, concurrency 1")
    w("")
    w("| prompt tokens | requests | server TTFT p50 | server TTFT p99 | server mean | reference (generate 1 token, median of 3) | reference / server |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    for length in sorted(set(ttft) | set(ref_ttft) | set(int(x) for x in meta.get("ttft_lens", "").split(",") if x)):
        s = ttft.get(length)
        r = ref_ttft.get(length, {}).get("median_ms")
        p50 = s["ttft_ms"]["p50"] if s else None
        w(f"| {length} | {s['successful'] if s else 'no result'}{' (' + str(s['failed']) + ' failed)' if s and s['failed'] else ''} | "
          f"{number(p50)} | {number(s['ttft_ms']['p99']) if s else 'n/a'} | {number(s['ttft_ms']['mean']) if s else 'n/a'} | "
          f"{number(r)} | {ratio(r, p50)} |")
    w("")

    bandwidth = read_json(os.path.join(work, "bandwidth.json"))
    w("## Bandwidth bound (concurrency 1)")
    w("")
    if not bandwidth:
        w("not measured (bandwidth.json missing)")
    else:
        c1 = sweep.get(1)
        bound = bandwidth.get("bound_tokens_per_s_c1")
        w(f"- device-to-device copy on {bandwidth.get('device', '?')}: {bandwidth['bandwidth_bytes_per_s'] / 1e12:.2f} TB/s "
          f"(read + write of {bandwidth['copy_bytes'] / 2**30:.0f} GiB, torch)")
        if bound:
            w(f"- weights: {bandwidth['weights_bytes'] / 1e9:.2f} GB (model.onnx.data) -> bound {bound:,.0f} tok/s "
              f"({bandwidth['bound_ms_per_token_c1']:.3f} ms per token): every token reads every weight once")
            if c1:
                w(f"- measured at concurrency 1: {number(c1['output_throughput'])} tok/s = "
                  f"{100 * c1['output_throughput'] / bound:.0f}% of the bound (issue 19's goals: 1B fp16 >= 50%, 8B fp16 >= 60%)")
    w("")

    w("## Batch invariance (issue 19): each prompt sent 4 times within one run; share whose 4 greedy outputs agree")
    w("")
    invariance = {}
    for path in glob.glob(os.path.join(work, "invariance-*-*.json")):
        result = read_json(path)
        if result:
            invariance[(result.get("label") or "default", result["concurrency"])] = result
    if not invariance:
        w("not measured")
    else:
        w("| server | concurrency | prompts agreeing | rate | disagreeing: first part at token 0 / 1-3 / 4+ | failed requests | output tok/s during it |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for (label, c), r in sorted(invariance.items()):
            rate = "n/a" if r.get("rate") is None else f"{100 * r['rate']:.0f}%"
            first = r.get("first_difference")
            parted = f"{first['0']} / {first['1-3']} / {first['4+']}" if first else "n/a"
            w(f"| {'--deterministic' if label == 'deterministic' else 'default'} | {c} | {r['agreeing']} / {r['complete']} | {rate} | "
              f"{parted} | {r.get('error_count', 0)} | {number(r.get('output_tokens_per_s'))} |")
        w("")
        w(f"({next(iter(invariance.values()))['tokens']} greedy tokens of {next(iter(invariance.values()))['input_len']}-token random prompts; "
          "issue 19 measured 8/8, 14/64 and 58/256 at 1, 64 and 256 before --deterministic; token 0 comes from the prompt's "
          "step, later tokens from decode steps)")
    w("")
    det = levels(work, "det", all_failed)
    if det:
        w("## What --deterministic costs (the load generator, same settings as above)")
        w("")
        w("| conc | default tok/s | --deterministic tok/s | ratio | TPOT p50 default | TPOT p50 --deterministic |")
        w("|---:|---:|---:|---:|---:|---:|")
        for c in sorted(det):
            d, s = det[c], sweep.get(c)
            w(f"| {c} | {number(s['output_throughput']) if s else 'n/a'} | {number(d['output_throughput'])} | "
              f"{ratio(d['output_throughput'], s['output_throughput'] if s else None)} | {number(s['tpot_ms']['p50'], 2) if s else 'n/a'} | "
              f"{number(d['tpot_ms']['p50'], 2)} |")
        w("")

    kernels = {label: read_json(os.path.join(work, f"kernels-{label}.json")) for label in ("unfused", "fused")}
    w("## Kernels per decode step (ONNX Runtime's profiler, batch 1, eager; ADR 0007)")
    w("")
    if not any(kernels.values()):
        w("not measured")
    else:
        w("| graph | nodes per step | GPU kernels per step | step (profiled) us | nodes by op (per step) | node time by op (us per step) | GPU kernels by class (count / us) |")
        w("|---|---:|---:|---:|---|---|---|")
        for label, k in kernels.items():
            if not k:
                w(f"| {label} | not measured | | | | | |")
                continue
            ops = ", ".join(f"{op} {n:g}" for op, n in k["nodes_by_op_per_step"].items())
            times = ", ".join(f"{op} {t:g}" for op, t in list(k["node_us_by_op_per_step"].items())[:8])
            classes = ", ".join(f"{c} {n:g} / {k['gpu_kernel_us_by_class_per_step'].get(c, 0):g}" for c, n in k["gpu_kernels_by_class_per_step"].items()) or "no GPU kernel events"
            w(f"| {label} | {k['nodes_per_step']:g} | {number(k.get('gpu_kernels_per_step'), 0)} | {number(k.get('decode_step_us_median'), 0)} | {ops} | {times} | {classes} |")
    w("")

    w("## Goals (issue 9)")
    w("")
    for c, goal in GOALS.items():
        s = sweep.get(c)
        if s is None:
            w(f"- concurrency {c} >= {goal:,} output tok/s: not measured")
        else:
            verdict = "met" if s["output_throughput"] >= goal and s["failed"] == 0 else "NOT met"
            w(f"- concurrency {c} >= {goal:,} output tok/s: {verdict} ({number(s['output_throughput'])}"
              f"{', with ' + str(s['failed']) + ' failed requests' if s['failed'] else ''})")
    w("")

    w("## Greedy agreement (first 32 new tokens of 2 fixed prompts)")
    w("")
    ref_cases = reference.get("greedy", {}).get("cases", [])
    server_cases = server_greedy.get("cases", [])
    if not server_cases or not ref_cases:
        w(f"not available (server cases: {len(server_cases)}, reference cases: {len(ref_cases)})")
    else:
        w("| case | prompt tokens | server vs bf16: common prefix, equal positions | server vs fp32 | bf16 vs fp32 |")
        w("|---:|---:|---|---|---|")
        for index, (sc, rc) in enumerate(zip(server_cases, ref_cases)):
            tokens = sc.get("tokens")
            cells = []
            for a, b in ((rc.get("bf16"), tokens), (rc.get("fp32"), tokens), (rc.get("bf16"), rc.get("fp32"))):
                if a is None or b is None:
                    cells.append(sc.get("error", "n/a") if b is None and a is not None else "n/a")
                else:
                    g = agreement(a, b)
                    cells.append(f"{g['prefix']}/{g['of']}, {g['equal']}/{g['of']}")
            w(f"| {index} | {sc.get('prompt_len')} | {cells[0]} | {cells[1]} | {cells[2]} |")
        w("")
        w("(a match rate, not a check: the server runs fp16, the reference bf16 and fp32, and a random model's top "
          "logits are close, so one rounding difference changes the rest of the sequence)")
    w("")

    w("## Steps")
    w("")
    w("| step | status | seconds | detail |")
    w("|---|---|---:|---|")
    for step in steps:
        step += [""] * (4 - len(step))
        w(f"| {step[0]} | {step[1]} | {step[2]} | {step[3].replace('|', '/')} |")
    if all_failed:
        w("")
        w("Levels where every request failed (loadgen.txt has the errors): "
          + ", ".join(f"{name} ({count} requests)" for name, count in sorted(all_failed.items())))
    if reference.get("errors"):
        w("")
        w("Reference errors: " + "; ".join(reference["errors"]))
    if reference.get("skipped"):
        w("")
        w("Reference skipped (budget): " + ", ".join(reference["skipped"]))
    w("")

    latency = read_text(os.path.join(work, "bench-latency.md"))
    if latency:
        w("## The runner alone (`InferenceServer bench latency`: in process, no HTTP, no scheduler)")
        w("")
        w(latency.rstrip())
        w("")
    build = read_text(os.path.join(work, "build.log"))
    if build:
        w("## Build output")
        w("")
        w("```")
        w("\n".join(build.strip().splitlines()[-15:]))
        w("```")
        w("")
    smi = read_text(os.path.join(work, "nvidia-smi.txt"))
    w("## nvidia-smi at the start")
    w("")
    w("```")
    w(smi.rstrip() if smi else "(not captured)")
    w("```")
    print("\n".join(out))

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "steps": steps, "checkpoint": checkpoint, "all_failed": all_failed,
                       "server": {"sweep": {str(k): v for k, v in sorted(sweep.items())},
                                  "ttft": {str(k): v for k, v in sorted(ttft.items())},
                                  "greedy": server_greedy},
                       "reference": reference, "bandwidth": bandwidth,
                       "invariance": {f"{label}-{c}": r for (label, c), r in sorted(invariance.items())},
                       "deterministic": {str(k): v for k, v in sorted(det.items())}, "kernels": kernels}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
