#!/usr/bin/env python3
"""The Markdown report of run-split.sh: fused vs local split vs CPU attention on the Llama-1B shape.

  python3 split_report.py RUNDIR [--json OUT.json]

Reads RUNDIR's meta.txt, steps.tsv, load-<mode>-<c>.json (the load generator's --json), greedy-<mode>.json
(llama1b/server_greedy.py), metrics-<mode>.txt, nvidia-smi.txt, host.txt and stage-info.txt; prints the report.
"""
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama1b"))
from prompts import agreement  # noqa: E402
from report import number, ratio, read_json, read_text as read_optional, step_rows  # noqa: E402

MODES = {"fused": "fused (--device cuda)", "local": "local split (--attention-device cuda:0; greedy decode steps captured, ADR 0011)",
         "localeager": "local split, no captured steps (--attention-device cuda:0 --cuda-graphs false)",
         "localsync": "local split, a synchronization per run (--split-one-stream false)",
         "cpu": "CPU attention (--attention-device cpu --attention-overlap off)",
         "cpuov": "CPU attention, two micro-batches (--attention-device cpu --attention-overlap on)",
         "localstream": "local split on one CUDA stream (--attention-device cuda:0 --split-one-stream)",
         "cpustream": "CPU attention, two micro-batches, one CUDA stream (--attention-overlap on --split-one-stream)",
         "mixed": "GPU + host pools (--attention-device cuda:0,cpu)",
         "cputier": "CPU attention with the host KV tier (--attention-device cpu --host-kv-cache-memory)",
         "cpupre": "CPU attention, overlapped, prompts attended on the GPU (--attention-overlap on --prefill-attention compute)",
         "cputierpre": "CPU attention with the host KV tier, prompts attended on the GPU (--prefill-attention compute)",
         "remote": "compute on cuda:0, attention and KV on cuda:1 (--attention-device cuda:1)",
         "replicas": "two fused replicas, one per GPU, requests in turn (round robin)"}


def capacity(work, mode, tokens):
    """(pool tokens, sequences of `tokens` that fit) from capacity-<mode>.txt (vllm:cache_config_info of each server,
    summed over the replicas), or None."""
    pool = 0
    seqs = 0
    found = False
    for line in read_text(os.path.join(work, f"capacity-{mode}.txt")).splitlines():
        blocks = re.search(r'num_gpu_blocks="(\d+)"', line)
        size = re.search(r'block_size="(\d+)"', line)
        if blocks and size:
            found = True
            n = int(blocks.group(1)) * int(size.group(1))
            pool += n
            seqs += n // tokens if tokens else 0
    return (pool, seqs) if found else None


def running(work, mode, c):
    """The largest vllm:num_requests_running polled during level c, per server, summed (running-<mode>-<c>-<r>.tsv)."""
    total = None
    for path in sorted(glob.glob(os.path.join(work, f"running-{mode}-{c}-*.tsv"))):
        values = []
        for line in read_text(path).splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                try:
                    values.append(float(parts[1]))
                except ValueError:
                    pass
        if values:
            total = (total or 0) + max(values)
    return total


def read_text(path):
    return read_optional(path) or ""


def preemptions(work, mode, c):
    """vllm:num_preemptions_total after level c (run-split.sh's metrics-<mode>-<c>.txt), or blank when not recorded."""
    text = read_text(os.path.join(work, f"metrics-{mode}-{c}.txt"))
    total = None
    for line in text.splitlines():
        if line.startswith("vllm:num_preemptions"):
            try:
                total = (total or 0) + float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return "" if total is None else f"{total:.0f}"


def split_counters(work, mode, c):
    """inference_split_* counters after level c, summed per (name, overlapped): {(name, "true"|"false"): value}."""
    counters = {}
    for line in read_text(os.path.join(work, f"metrics-{mode}-{c}.txt")).splitlines():
        match = re.match(r'^(inference_split_\w+)\{([^}]*)\}\s+(\S+)', line)
        if not match:
            continue
        overlapped = re.search(r'overlapped="(\w+)"', match.group(2))
        key = (match.group(1), overlapped.group(1) if overlapped else "")
        try:
            counters[key] = counters.get(key, 0.0) + float(match.group(3))
        except ValueError:
            pass
    return counters


def overlap_cells(work, mode, c, previous):
    """Two cells for level c (deltas from the previous level): overlapped steps' share, and step time / busier device."""
    now = split_counters(work, mode, c)
    if not now:
        return "", ""
    before = split_counters(work, mode, previous) if previous is not None else {}

    def delta(name, flag):
        return now.get((name, flag), 0.0) - before.get((name, flag), 0.0)

    steps = {flag: delta("inference_split_steps_total", flag) for flag in ("true", "false")}
    total = steps["true"] + steps["false"]
    share = f"{steps['true']:.0f}/{total:.0f}" if total else ""
    step = delta("inference_split_step_time_seconds_total", "true")
    busier = max(delta("inference_split_dense_busy_seconds_total", "true"), delta("inference_split_attention_busy_seconds_total", "true"))
    efficiency = f"{step / busier:.2f}" if steps["true"] and busier > 0 else ""
    return share, efficiency


def main():
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    work = args[0]
    json_out = args[args.index("--json") + 1] if "--json" in args else None
    meta = dict(line.split("=", 1) for line in read_text(os.path.join(work, "meta.txt")).splitlines() if "=" in line)
    loads = {}
    for path in glob.glob(os.path.join(work, "load-*-*.json")):
        match = re.search(r"load-(\w+)-(\d+)\.json$", path)
        report = read_json(path)
        if match and report and report.get("levels"):
            loads[(match.group(1), int(match.group(2)))] = report["levels"][0]
    greedy = {mode: read_json(os.path.join(work, f"greedy-{mode}.json")) for mode in MODES}
    levels = sorted({c for _, c in loads} | {int(c) for c in meta.get("levels", "").split(",") if c})
    modes = [m for m in meta.get("modes", "fused,local,cpu").split(",") if m in MODES]
    out = []
    w = out.append
    shape = {"8b": "Llama-3.1-8B shape", "tiny": "tiny shape"}.get(meta.get("shape", "1b"), "Llama-3.2-1B shape")
    w(f"# Attention offloading: fused vs split servers ({shape}, fp16)")
    w("")
    w(f"Run {meta.get('date', '?')}; {read_text(os.path.join(work, 'stage-info.txt')).strip()}")
    w(f"Host: {' '.join(read_text(os.path.join(work, 'host.txt')).split())}")
    w(f"Prompts of {meta.get('input_len')} random token ids, {meta.get('output_len')} new tokens (ignore_eos); "
      f"{meta.get('prompts_rule', '')}; KV cache {meta.get('kv_cache')} for every server. Fewer requests per level "
      "than run-llama1b.sh, to fit one 540 s call with three servers.")
    w("")
    w("| server | concurrency | ok/failed | output tok/s | vs fused | TTFT p50 (ms) | TTFT p99 | TPOT p50 (ms) | TPOT p99 | TPOT p50 vs fused | preemptions so far | overlapped steps | overlapped step / busier |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in modes:
        previous = None
        for c in levels:
            s = loads.get((mode, c))
            f = loads.get(("fused", c))
            share, efficiency = overlap_cells(work, mode, c, previous)
            previous = c
            if not s:
                w(f"| {mode} | {c} | not measured | | | | | | | | | {share} | {efficiency} |")
                continue
            w(f"| {mode} | {c} | {s.get('successful', 0)}/{s.get('failed', 0)} | {number(s['output_throughput'])} | "
              f"{ratio(s['output_throughput'], f['output_throughput'] if f else None)} | {number(s['ttft_ms']['p50'])} | "
              f"{number(s['ttft_ms']['p99'])} | {number(s['tpot_ms']['p50'], 2)} | {number(s['tpot_ms']['p99'], 2)} | "
              f"{ratio(s['tpot_ms']['p50'], f['tpot_ms']['p50'] if f else None)} | {preemptions(work, mode, c)} | {share} | {efficiency} |")
    tokens = int(meta.get("input_len", 0) or 0) + int(meta.get("output_len", 0) or 0)
    if any(capacity(work, m, tokens) for m in modes):
        w("")
        w(f"## Capacity: sequences of {tokens} tokens (prompt + new tokens)")
        w("")
        w("KV pool tokens from each server's `vllm:cache_config_info` (num_gpu_blocks x block_size; the replicas' summed); "
          "sequences that fit = pool tokens / sequence tokens (per server, summed); running = the largest "
          "`vllm:num_requests_running` polled every 50 ms during the level (the replicas: each one's largest, summed). "
          "Issue 17's two-GPU goals: remote >= 2x fused's sequences and >= 1.3x the replicas', at >= 1.0x the replicas' "
          "output tok/s.")
        w("")
        w("| server | KV pool tokens | sequences that fit | vs fused | vs replicas | " + " | ".join(f"running at {c}" for c in levels) + " |")
        w("|---|---:|---:|---:|---:|" + "---:|" * len(levels))
        fused_cap = capacity(work, "fused", tokens)
        replica_cap = capacity(work, "replicas", tokens)
        for mode in modes:
            cap = capacity(work, mode, tokens)
            if not cap:
                continue
            cells = []
            for c in levels:
                r = running(work, mode, c)
                cells.append("" if r is None else f"{r:.0f}")
            w(f"| {mode} | {cap[0]:,} | {cap[1]} | {ratio(cap[1], fused_cap[1] if fused_cap else None)} | "
              f"{ratio(cap[1], replica_cap[1] if replica_cap else None)} | " + " | ".join(cells) + " |")
        if "remote" in modes and "replicas" in modes:
            w("")
            for c in levels:
                s = loads.get(("remote", c))
                r = loads.get(("replicas", c))
                if s and r:
                    w(f"- concurrency {c}: remote {number(s['output_throughput'])} output tok/s against the replicas' "
                      f"{number(r['output_throughput'])}: {ratio(s['output_throughput'], r['output_throughput'])} (goal >= 1.0x)")
    w("")
    w("## Greedy tokens of the two fixed prompts, against fused")
    w("")
    w("fp16 everywhere; the local split attends with the fused path's q, k and kernel; cpu and mixed attention compute in fp32 over fp16 KV, so a "
      "close top-2 of this random model may flip: a rate, not a check.")
    w("")
    w("| server | prompt | tokens | common prefix with fused | equal positions |")
    w("|---|---:|---:|---:|---:|")
    fused_cases = (greedy.get("fused") or {}).get("cases", [])
    for mode in modes:
        cases = (greedy.get(mode) or {}).get("cases")
        if not cases:
            w(f"| {mode} | | not measured | | |")
            continue
        for i, case in enumerate(cases):
            reference = fused_cases[i].get("tokens") if i < len(fused_cases) else None
            tokens = case.get("tokens")
            if tokens is None or reference is None:
                w(f"| {mode} | {i} | {case.get('error', 'n/a')} | | |")
                continue
            a = agreement(reference, tokens)
            w(f"| {mode} | {i} ({case.get('prompt_len')} tokens) | {len(tokens)} | {a['prefix']}/{a['of']} | {a['equal']}/{a['of']} |")
    w("")
    w("## Attention metrics at the end of each run")
    w("")
    w("`inference_attention_offload_bytes_total` counts bytes that cross devices only: 0 for the local split.")
    w("")
    for mode in modes:
        text = read_text(os.path.join(work, f"metrics-{mode}.txt")).strip()
        w(f"- {mode}: " + ("; ".join(line for line in text.splitlines() if "_sum" in line or "offload" in line) or "none"))
    w("")
    w("## Steps")
    w("")
    w("| step | status | seconds | detail |")
    w("|---|---|---:|---|")
    for row in step_rows(work):
        w(row)
    w("")
    w("## Server commands")
    w("")
    for key, value in meta.items():
        if key.startswith("server_command_"):
            w(f"- {key[len('server_command_'):]}: `{value}`")
    w("")
    w("## nvidia-smi")
    w("")
    w("```")
    w(read_text(os.path.join(work, "nvidia-smi.txt")).strip()[:3000])
    w("```")
    print("\n".join(out))
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"meta": meta, "levels": {f"{m}-{c}": v for (m, c), v in sorted(loads.items())},
                       "greedy": greedy}, f, indent=1)


if __name__ == "__main__":
    main()
