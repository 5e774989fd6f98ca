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
# 3. with STEPS=1: each model's decode step alone (`InferenceServer bench latency`, batch 1 / 64 / 256, CUDA graphs on
#    and off; steps-NAME-graphs.txt, steps-NAME-eager.txt) and its ONNX Runtime profile at batch 256, eager, with
#    CUDA_LAUNCH_BLOCKING=1 (nodes per decode step by op type and their time, launch plus GPU: kernels-NAME.json);
#    SERVE=0 skips 1 and 2. Where the concurrency-256 gap comes from.
#
# $OUT gets report.md, run.log, loadgen.txt, metrics-*.tsv, server-*.log, build-*.log. Every step has a timeout
# inside BUDGET_S; the report is written whatever fails. Checkpoints and builds stay under WORK for a later call.
#
# Settings (environment): KV_CACHE (4g), CONC (256), INPUT_LEN (128), OUTPUT_LEN (128), LONG_LEN (4000), LONG_OUT (256),
# LONG_N (160), MAX_NUM_BATCHED_TOKENS (8192), PORT (18602), BUDGET_S (540), APP (/tmp/gpu/app), FILES (/tmp/gpu/files),
# WORK (/tmp/dense1b), STEPS (0), SERVE (1), VOCAB (128256: prompt ids below it), DEVICE (cuda; cpu to check this script elsewhere on models already under WORK),
# MLA_ATTENTION (gather: the MLA model's build --mla-attention; latent: ONNX Runtime's LATENT PagedAttention; mha: one
# MultiHeadAttention a layer over the gathered blocks, fp16 only; ADR 0008).
set -uo pipefail

START=$SECONDS
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APP=${APP:-/tmp/gpu/app}
FILES=${FILES:-/tmp/gpu/files}
WORK=${WORK:-/tmp/dense1b}
OUT=${OUT:-$WORK/out}
KV_CACHE=${KV_CACHE:-4g}
MLA_ATTENTION=${MLA_ATTENTION:-gather}
CONC=${CONC:-256}
INPUT_LEN=${INPUT_LEN:-128}
OUTPUT_LEN=${OUTPUT_LEN:-128}
LONG_LEN=${LONG_LEN:-4000}
# 256 new tokens: with 32 (run 7, 2026-12-07) the first sequences ended before the later prompts were prefilled, so
# MLA's running count peaked at 64 of the 104 its pool holds; the count then measured prefill speed, not capacity.
LONG_OUT=${LONG_OUT:-256}
LONG_N=${LONG_N:-160}
MAX_NUM_BATCHED_TOKENS=${MAX_NUM_BATCHED_TOKENS:-8192}
PORT=${PORT:-18602}
BUDGET_S=${BUDGET_S:-540}
DEVICE=${DEVICE:-cuda}
VOCAB=${VOCAB:-128256}
STEPS=${STEPS:-0}
SERVE=${SERVE:-1}
URL=http://127.0.0.1:$PORT
RUN=$WORK/run
export PYTHONUNBUFFERED=1
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"
begin_run


# make NAME SCRIPT ARGS...: the checkpoint $WORK/NAME (reused when there), then its fp16 CUDA build $WORK/NAME-built.
make_model() {
    local name=$1 script=$2 t=$SECONDS
    shift 2
    if [[ ! -f $WORK/$name/config.json ]]; then
        rm -rf "${WORK:?}/$name" "$WORK/$name-built"
        # It keeps 300 s for the steps after it: with BUDGET_S near 300 nothing is left (run 9: a 1 s limit, no message).
        if (( $(budget 150 300) < 20 )); then
            step "checkpoint $name" FAILED 0 "BUDGET_S=$BUDGET_S leaves under 20 s for it after the 300 s kept for the runs: give 420 or more"
            return 1
        fi
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
    build_cached "build $name" "$WORK/$name" "$WORK/$name-built" fp16 150 240 "$OUT/build-$name.log" \
        "$([[ $name == mla1b ]] && echo "--mla-attention $MLA_ATTENTION")"
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
    step_metrics "$URL" "$RUN/steps-before-$name.txt"
    INPUT_LEN=$INPUT_LEN OUTPUT_LEN=$OUTPUT_LEN load_level "$name c=$CONC" "$(budget 90 40)" 10 "$LOADGEN" "$CONC" $(( 2 * CONC )) "$CONC" \
        "$RUN/sweep-$name.json"
    # Model steps by kind (decode / prompt) over the throughput level: how many, their mean (lib.sh's step_summary).
    step_metrics "$URL" "$RUN/steps-after-$name.txt"
    step_summary "$name c=$CONC" "$RUN/steps-before-$name.txt" "$RUN/steps-after-$name.txt" | tee -a "$OUT/loadgen.txt"
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

# steps NAME: the decode step of $WORK/NAME-built alone, graphs on and off, and its eager profile at batch 256.
steps() {
    local name=$1 t=$SECONDS mode trace
    for mode in graphs eager; do
        if timeout "$(budget 120 30)" "$APP/InferenceServer" bench latency --model "$WORK/$name-built" --device "$DEVICE" \
            --batch-sizes 1,64,256 --input-len "$INPUT_LEN" --output-len 64 --cuda-graphs "$([[ $mode == graphs ]] && echo true || echo false)" \
            2>&1 | grep -v ScatterND > "$OUT/steps-$name-$mode.txt"; then
            step "steps $name $mode" ok $(( SECONDS - t )) "$(grep -E '^\| (1|64|256) \|' "$OUT/steps-$name-$mode.txt" | tr -s ' ' | tr '|' ' ' | tr '\n' ';' | cut -c1-250)"
        else
            step "steps $name $mode" FAILED $(( SECONDS - t )) "$(tail -n 1 "$OUT/steps-$name-$mode.txt" | cut -c1-200)"
        fi
    done
    rm -f "$RUN/prof-$name"_*.json
    # CUDA_LAUNCH_BLOCKING=1: every kernel launch waits for the kernel, so a node's time in ONNX Runtime's trace is its
    # launch plus its GPU time (the trace has no GPU events without CUPTI): which op types hold the GPU at 256 rows.
    if CUDA_LAUNCH_BLOCKING=1 INFERENCE_SERVER_ORT_PROFILE=$RUN/prof-$name timeout "$(budget 90 30)" "$APP/InferenceServer" bench latency --model "$WORK/$name-built" \
        --device "$DEVICE" --batch-sizes 256 --input-len "$INPUT_LEN" --output-len 8 --cuda-graphs false > "$RUN/prof-$name.out" 2>&1; then
        trace=$(ls -t "$RUN/prof-$name"_*.json 2>/dev/null | head -n 1)
        if [[ -n $trace ]] && python3 "$HERE/../llama1b/kernels.py" "$trace" "$OUT/kernels-$name.json" --label "$name"; then
            step "profile $name" ok $(( SECONDS - t ))
        else
            step "profile $name" FAILED $(( SECONDS - t )) "no trace or kernels.py failed"
        fi
    else
        step "profile $name" FAILED $(( SECONDS - t )) "exit: $(tail -n 1 "$RUN/prof-$name.out" | cut -c1-200)"
    fi
    rm -f "$RUN/prof-$name"_*.json
}

finish() {
    end_server 10
    python3 "$HERE/dense1b_report.py" "$RUN" "$LONG_LEN" "$LONG_OUT" "$CONC" > "$OUT/report.md" || echo "report failed"
    cat "$OUT/report.md"
    exec >&- 2>&-
    wait "$TEE_PID" 2>/dev/null
}
trap finish EXIT

echo "== dense MLA 1B vs GQA 1B: KV $KV_CACHE, concurrency $CONC, long $LONG_N x $LONG_LEN, budget $BUDGET_S s"
timeout 20 nvidia-smi | head -15
run_model() {
    local name=$1
    if (( STEPS )); then
        steps "$name"
    fi
    if (( SERVE )); then
        measure "$name"
    fi
}
make_model gqa1b "$HERE/../llama1b/make_checkpoint.py" && run_model gqa1b
make_model mla1b "$HERE/make_checkpoint.py" --shape dense1b --layers 16 && run_model mla1b
exit $FAILED
