#!/usr/bin/env python3
"""Kernels per decode step from ONNX Runtime's profiler (INFERENCE_SERVER_ORT_PROFILE=<prefix>): the trace of an
`InferenceServer bench latency --cuda-graphs false` run, cut into model runs (`model_run` events); the decode steps are
the runs no longer than the median run (prefill runs are the long ones).

  python3 kernels.py PROFILE.json OUT.json [--label fused]

Per decode step: the node events (`Node` category, one per ONNX node executed) by op type, and their time; when the
trace has GPU kernel events (`Kernel` category, CUDA provider with CUPTI), those too, by kernel class.
"""
import argparse
import json
import re
import statistics
import sys

CLASSES = [("gemm", r"gemm|gemv|cutlass|sm\d+_xmma|matmul|ampere_|hopper_|nvjet"), ("attention", r"flash|attention|fmha|paged"),
           ("norm", r"layernorm|layer_norm|rmsnorm|skip"), ("int4", r"nbits|dequant|4bit|blkq"),
           ("copy", r"memcpy|memset|copy|concat|split|slice|gather|transpose|cast"),
           ("elementwise", r"elementwise|sigmoid|mul|add|silu|unary|binary"), ("reduce", r"reduce|argmax|softmax")]


def kernel_class(name):
    lowered = name.lower()
    for label, pattern in CLASSES:
        if re.search(pattern, lowered):
            return label
    return "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("out")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    with open(args.profile) as f:
        events = json.load(f)
    if isinstance(events, dict):
        events = events.get("traceEvents", [])
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")
    if not runs:
        raise SystemExit(f"{args.profile}: no model_run events")
    median = statistics.median(end - start for start, end in runs)
    decode = [r for r in runs if r[1] - r[0] <= median]

    def in_run(event, run):
        return run[0] <= event.get("ts", -1) <= run[1]

    nodes = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    kernels = [e for e in events if e.get("cat") == "Kernel"]
    per_run_nodes, per_run_kernels = [], []
    node_ops, node_time, kernel_classes, kernel_time = {}, {}, {}, {}
    for run in decode:
        mine = [e for e in nodes if in_run(e, run)]
        per_run_nodes.append(len(mine))
        for e in mine:
            op = e.get("args", {}).get("op_name", "?")
            node_ops[op] = node_ops.get(op, 0) + 1
            node_time[op] = node_time.get(op, 0) + e.get("dur", 0)
        mine = [e for e in kernels if in_run(e, run)]
        per_run_kernels.append(len(mine))
        for e in mine:
            label = kernel_class(e.get("name", ""))
            kernel_classes[label] = kernel_classes.get(label, 0) + 1
            kernel_time[label] = kernel_time.get(label, 0) + e.get("dur", 0)
    steps = len(decode)
    result = {
        "label": args.label,
        "runs": len(runs),
        "decode_steps": steps,
        "decode_step_us_median": statistics.median(end - start for start, end in decode),
        "nodes_per_step": statistics.median(per_run_nodes),
        "nodes_by_op_per_step": {op: round(n / steps, 2) for op, n in sorted(node_ops.items(), key=lambda p: -p[1])},
        "node_us_by_op_per_step": {op: round(t / steps, 1) for op, t in sorted(node_time.items(), key=lambda p: -p[1])},
        "gpu_kernels_per_step": statistics.median(per_run_kernels) if kernels else None,
        "gpu_kernels_by_class_per_step": {k: round(n / steps, 2) for k, n in sorted(kernel_classes.items(), key=lambda p: -p[1])},
        "gpu_kernel_us_by_class_per_step": {k: round(t / steps, 1) for k, t in sorted(kernel_time.items(), key=lambda p: -p[1])},
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"{args.label}: {result['nodes_per_step']} nodes per decode step ({steps} decode steps of {len(runs)} runs)"
          + (f", {result['gpu_kernels_per_step']} GPU kernels" if kernels else ", no GPU kernel events in the trace"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
