#!/usr/bin/env bash
# Issue 18's second goal, run ON the GPU machine after bench/gpu/stage-bench.sh's pieces are unpacked:
#
#   source /tmp/gpu/env && bash bench/gpu/mla/run-dense1b-vs-gqa.sh
#
# The dense MLA model of the Llama-1B GQA shape (mla/make_checkpoint.py --shape dense1b: 16 layers, hidden 2048, 32
# heads, kv_lora_rank 256, rope 64; 10 KiB of cache per token in 16 bits) against the 1B GQA model itself
# (llama1b/make_checkpoint.py: 8 KV heads of 64; 32 KiB per token), both random weights, both built fp16 for CUDA and
# served one after the other with the same flags (--kv-cache-memory $KV_CACHE, CUDA graphs):
#
# 1. throughput: output tok/s at concurrency $CONC (INPUT_LEN-token prompts, OUTPUT_LEN new tokens); goal: MLA within
#    15% of GQA;
# 2. capacity: how many LONG_LEN-token sequences run at once in that cache: the server's own count (num_gpu_blocks x
#    block_size / (LONG_LEN + LONG_OUT), from /metrics' vllm:cache_config_info) and the measured one: LONG_N requests
#    of LONG_LEN prompt tokens and LONG_OUT new tokens sent at once, vllm:num_requests_running sampled every 50 ms
#    (its largest value, while no request was preempted); goal: MLA at least 2.8x GQA.
#
# $OUT gets report.md, run.log, loadgen.txt, metrics-*.tsv, server-*.log, build-*.log. Every step has a timeout
# inside BUDGET_S; the report is written whatever fails. Checkpoints and builds stay under WORK for a later call.
#
# Settings (environment): KV_CACHE (4g), CONC (256), INPUT_LEN (128), OUTPUT_LEN (128), LONG_LEN (4000), LONG_OUT (32),
# LONG_N (160), MAX_NUM_BATCHED_TOKENS (8192), PORT (18602), BUDGET_S (540), APP (/tmp/gpu/app), FILES (/tmp/gpu/files),
# WORK (/tmp/dense1b), VOCAB (128256: prompt ids below it), DEVICE (cuda; cpu to check this script elsewhere on models already under WORK).
set -uo pipefail

START=$SECONDS
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APP=${APP:-/tmp/gpu/app}
FILES=${FILES:-/tmp/gpu/files}
WORK=${WORK:-/tmp/dense1b}
OUT=${OUT:-$WORK/out}
KV_CACHE=${KV_CACHE:-4g}
CONC=${CONC:-256}
INPUT_LEN=${INPUT_LEN:-128}
OUTPUT_LEN=${OUTPUT_LEN:-128}
LONG_LEN=${LONG_LEN:-4000}
LONG_OUT=${LONG_OUT:-32}
LONG_N=${LONG_N:-160}
MAX_NUM_BATCHED_TOKENS=${MAX_NUM_BATCHED_TOKENS:-8192}
PORT=${PORT:-18602}
BUDGET_S=${BUDGET_S:-540}
DEVICE=${DEVICE:-cuda}
VOCAB=${VOCAB:-128256}
URL=http://127.0.0.1:$PORT
RUN=$WORK/run
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
rm -rf "$RUN"
mkdir -p "$RUN"
exec > >(tee "$OUT/run.log") 2>&1
TEE_PID=$!
FAILED=0
SERVER_PID=
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"

LOADGEN=$APP/InferenceServer.LoadGenerator
cp "$FILES"/bench/gpu/out/loadgen/InferenceServer.LoadGenerator* "$APP/" 2>/dev/null


# make NAME SCRIPT ARGS...: the checkpoint $WORK/NAME (reused when there), then its fp16 CUDA build $WORK/NAME-built.
make_model() {
    local name=$1 script=$2 t=$SECONDS
    shift 2
    if [[ ! -f $WORK/$name/config.json ]]; then
        rm -rf "${WORK:?}/$name" "$WORK/$name-built"
        if timeout "$(budget 150 300)" python3 "$script" "$WORK/$name" "$@" > "$RUN/checkpoint-$name.out" 2>&1; then
            step "checkpoint $name" ok $(( SECONDS - t )) "$(tail -n 1 "$RUN/checkpoint-$name.out" | cut -c1-300)"
        else
            tail -n 20 "$RUN/checkpoint-$name.out"
            step "checkpoint $name" FAILED $(( SECONDS - t ))
            rm -rf "${WORK:?}/$name"
            return 1
        fi
    else
        step "checkpoint $name" reused 0
    fi
    t=$SECONDS
    local stamp
    stamp="fp16 $(cat "$APP"/InferenceServer*.dll 2>/dev/null | sha256sum | cut -c1-16)"
    if [[ -f $WORK/$name-built/.bench-stamp && "$(cat "$WORK/$name-built/.bench-stamp")" == "$stamp" ]]; then
        step "build $name" reused 0
        return 0
    fi
    rm -rf "${WORK:?}/$name-built"
    if timeout "$(budget 150 240)" "$APP/InferenceServer" build --checkpoint "$WORK/$name" --out "$WORK/$name-built" --dtype fp16 --device cuda > "$OUT/build-$name.log" 2>&1; then
        echo "$stamp" > "$WORK/$name-built/.bench-stamp"
        step "build $name" ok $(( SECONDS - t )) "$(tail -n 1 "$OUT/build-$name.log" | cut -c1-300)"
    else
        tail -n 20 "$OUT/build-$name.log"
        step "build $name" FAILED $(( SECONDS - t ))
        return 1
    fi
}

# measure NAME: serve $WORK/NAME-built, throughput at CONC, then the long-sequence capacity.
measure() {
    local name=$1 t=$SECONDS poller
    "$APP/InferenceServer" --model "$WORK/$name-built" --device "$DEVICE" --urls "$URL" --kv-cache-memory "$KV_CACHE" \
        --max-num-seqs 256 $([[ $DEVICE == cuda ]] && echo --cuda-graphs true) --max-num-batched-tokens "$MAX_NUM_BATCHED_TOKENS" --max-queued-requests 4096 \
        --shutdown-timeout 5 > "$RUN/server-$name.log" 2>&1 &
    SERVER_PID=$!
    if ! wait_ready "$(budget 120 60)"; then
        tail -n 20 "$RUN/server-$name.log"
        step "serve $name" FAILED $(( SECONDS - t )) "not ready"
        end_server 20
        excerpt_log "$RUN/server-$name.log" "$OUT/server-$name.log" 60 100
        return 1
    fi
    curl -s "$URL/metrics" | grep '^vllm:cache_config_info' > "$RUN/cache-$name.txt"
    step "serve $name" ok $(( SECONDS - t )) "$(cat "$RUN/cache-$name.txt")"
    INPUT_LEN=$INPUT_LEN OUTPUT_LEN=$OUTPUT_LEN load_level "$name c=$CONC" "$(budget 90 40)" 10 "$LOADGEN" "$CONC" $(( 2 * CONC )) "$CONC" \
        "$RUN/sweep-$name.json"
    poll_metrics "$RUN/metrics-$name.tsv" &
    poller=$!
    INPUT_LEN=$LONG_LEN OUTPUT_LEN=$LONG_OUT load_level "$name long" "$(budget 150 20)" 10 "$LOADGEN" "$LONG_N" "$LONG_N" 0 \
        "$RUN/long-$name.json" "$LONG_N x $LONG_LEN-token prompts at once"
    kill "$poller" 2>/dev/null
    wait "$poller" 2>/dev/null
    cp "$RUN/metrics-$name.tsv" "$OUT/"
    end_server 20
    excerpt_log "$RUN/server-$name.log" "$OUT/server-$name.log" 60 100
}

finish() {
    end_server 10
    python3 - "$RUN" "$LONG_LEN" "$LONG_OUT" "$CONC" > "$OUT/report.md" <<'PY' || echo "report failed"
import json, os, re, sys
run, long_len, long_out, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def text(name):
    p = os.path.join(run, name)
    return open(p).read() if os.path.exists(p) else ""
def level(name):
    try:
        d = json.loads(text(name))
    except ValueError:
        return None
    levels = d.get("levels", [d]) if isinstance(d, dict) else d
    return levels[0] if levels else None
rows = {}
for name in ("gqa1b", "mla1b"):
    cache = text(f"cache-{name}.txt")
    blocks = re.search(r'num_gpu_blocks="(\d+)"', cache)
    size = re.search(r'block_size="(\d+)"', cache)
    tokens = int(blocks.group(1)) * int(size.group(1)) if blocks and size else None
    samples = []
    for line in text(f"metrics-{name}.tsv").splitlines():
        p = line.split("\t")
        try:
            samples.append((float(p[1]), float(p[3])))
        except (IndexError, ValueError):
            pass
    first_preempt = samples[0][1] if samples else 0
    before = [r for r, pre in samples if pre == first_preempt]
    rows[name] = dict(tokens=tokens, fit=(tokens // (long_len + long_out)) if tokens else None,
                      running_max=max(before) if before else None, preempted=(samples[-1][1] - first_preempt) if samples else None,
                      sweep=level(f"sweep-{name}.json"), long=level(f"long-{name}.json"))
def f(x, d=1):
    return "n/a" if x is None else f"{x:,.{d}f}"
def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}x"
print("# Dense MLA (1B shape) against the 1B GQA model, issue 18")
print()
g, m = rows["gqa1b"], rows["mla1b"]
print(f"Both fp16 for CUDA, CUDA graphs, the same --kv-cache-memory; random weights.")
print()
print(f"| | GQA 1B | MLA 1B | MLA / GQA | goal |")
print(f"|---|---:|---:|---:|---|")
gt = g["sweep"]["output_throughput"] if g["sweep"] else None
mt = m["sweep"]["output_throughput"] if m["sweep"] else None
print(f"| output tok/s at concurrency {conc} | {f(gt)} | {f(mt)} | {ratio(mt, gt)} | >= 0.85x: {'**met**' if gt and mt and mt >= 0.85 * gt else 'not met'} |")
for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT")):
    gv = g["sweep"][key]["mean"] if g["sweep"] else None
    mv = m["sweep"][key]["mean"] if m["sweep"] else None
    print(f"| {label} mean ms at concurrency {conc} | {f(gv, 2)} | {f(mv, 2)} | {ratio(mv, gv)} | |")
print(f"| KV pool tokens (num_gpu_blocks x block_size) | {f(g['tokens'], 0)} | {f(m['tokens'], 0)} | {ratio(m['tokens'], g['tokens'])} | |")
print(f"| {long_len}+{long_out}-token sequences that fit the pool | {f(g['fit'], 0)} | {f(m['fit'], 0)} | {ratio(m['fit'], g['fit'])} | >= 2.8x: {'**met**' if g['fit'] and m['fit'] and m['fit'] >= 2.8 * g['fit'] else 'not met'} |")
print(f"| largest running count measured ({long_len}-token prompts, before any preemption) | {f(g['running_max'], 0)} | {f(m['running_max'], 0)} | {ratio(m['running_max'], g['running_max'])} | >= 2.8x: {'**met**' if g['running_max'] and m['running_max'] and m['running_max'] >= 2.8 * g['running_max'] else 'not met'} |")
print(f"| preemptions during the long level | {f(g['preempted'], 0)} | {f(m['preempted'], 0)} | | |")
print()
print("## Steps")
print()
print("| step | status | s | detail |")
print("|---|---|---:|---|")
for line in text("steps.tsv").splitlines():
    parts = (line.split("\t") + ["", "", "", ""])[:4]
    print("| " + " | ".join(p.replace("|", "/") for p in parts) + " |")
PY
    cat "$OUT/report.md"
    exec >&- 2>&-
    wait "$TEE_PID" 2>/dev/null
}
trap finish EXIT

echo "== dense MLA 1B vs GQA 1B: KV $KV_CACHE, concurrency $CONC, long $LONG_N x $LONG_LEN, budget $BUDGET_S s"
timeout 20 nvidia-smi | head -15
make_model gqa1b "$HERE/../llama1b/make_checkpoint.py" && measure gqa1b
make_model mla1b "$HERE/make_checkpoint.py" --shape dense1b --layers 16 && measure mla1b
exit $FAILED
