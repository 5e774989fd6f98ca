#!/usr/bin/env bash
# Returning conversations with and without the host KV tier (issue 17 item 4; ADR 0009), one command, both servers in
# one run on one machine:
#
#   bash bench/run-returning.sh                                  # this machine: the default model on the CPU
#   APP=/tmp/gpu/app MODEL=/tmp/llama1b/checkpoint-fp16-cuda-split SERVER_ARGS="--device cuda --max-model-len 16384" KV_CACHE=2g \
#     HOST_TIER=32g INPUT_LEN=4096 CONVERSATIONS=64 bash bench/run-returning.sh   # the GPU machine (staged app)
#
# CONVERSATIONS first turns (INPUT_LEN random prompt ids, OUTPUT_LEN greedy tokens) all leave before any returns, so
# their KV (CONVERSATIONS x (INPUT_LEN + OUTPUT_LEN) tokens) is larger than the KV cache (KV_CACHE) and the earliest
# conversations' blocks are evicted by the later ones; then each conversation returns, in the same order, with its whole
# history plus FOLLOWUP_LEN new ids and asks for RETURNING_LEN tokens (`InferenceServer.LoadGenerator returning`).
# Two servers in turn on the same model and arguments, each started fresh:
#   notier   prefix caching only: a returning turn whose blocks were evicted recomputes its history
#   tier     --host-kv-cache-memory HOST_TIER: evicted prefix blocks wait in host RAM and are copied back on a hit
# Prints each phase's table, the counters of /metrics after the run (prefix-cache and host-tier hits, swaps,
# recomputed tokens) and the returning turns' TTFT ratio tier / notier. Writes everything it prints to
# bench/results/returning-<date>.md (RESULTS overrides the path).
#
# Settings (environment): MODEL (models/tiny-pycoder), SERVER_ARGS (none), KV_CACHE (32m: about 8,000 tokens of the
# default model, under a fifth of the first turns' KV), HOST_TIER (1g), CONVERSATIONS (32), INPUT_LEN (1536),
# OUTPUT_LEN (64), FOLLOWUP_LEN (64), RETURNING_LEN (16), CONCURRENCY (4), VOCAB (4096), PORT (18380),
# APP (unset: `dotnet publish` the server and the load generator here; set: the staged InferenceServer and
# InferenceServer.LoadGenerator executables in that folder).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${MODEL:-$ROOT/models/tiny-pycoder}
SERVER_ARGS=${SERVER_ARGS:-}
KV_CACHE=${KV_CACHE:-32m}
HOST_TIER=${HOST_TIER:-1g}
CONVERSATIONS=${CONVERSATIONS:-32}
INPUT_LEN=${INPUT_LEN:-1536}
OUTPUT_LEN=${OUTPUT_LEN:-64}
FOLLOWUP_LEN=${FOLLOWUP_LEN:-64}
RETURNING_LEN=${RETURNING_LEN:-16}
CONCURRENCY=${CONCURRENCY:-4}
VOCAB=${VOCAB:-4096}
PORT=${PORT:-18380}
URL=http://127.0.0.1:$PORT
WORK=$(mktemp -d /tmp/run-returning.XXXXXX)
RESULTS=${RESULTS:-$ROOT/bench/results/returning-$(date -u +%Y-%m-%d-%H%M).md}
SERVER_PID=
# wait_ready and end_server (the GPU scripts' helpers; they read SERVER_PID and URL).
# shellcheck source=gpu/lib.sh
source "$ROOT/bench/gpu/lib.sh"

cleanup() {
    end_server 20 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$(dirname "$RESULTS")"
exec > >(tee "$RESULTS") 2>&1

if [[ -n ${APP:-} ]]; then
    SERVER=("$APP/InferenceServer")
    LOADGEN=("$APP/InferenceServer.LoadGenerator")
else
    echo "Building (dotnet publish -c Release)..."
    dotnet publish "$ROOT/src/InferenceServer" -c Release -o "$WORK/server" --artifacts-path "$WORK/artifacts" > "$WORK/publish.log" 2>&1 \
        || { grep -E ' error ' "$WORK/publish.log" | sort -u | head; exit 1; }
    dotnet publish "$ROOT/bench/InferenceServer.LoadGenerator" -c Release -o "$WORK/loadgen" --artifacts-path "$WORK/artifacts" > "$WORK/publish-loadgen.log" 2>&1 \
        || { grep -E ' error ' "$WORK/publish-loadgen.log" | sort -u | head; exit 1; }
    SERVER=(dotnet "$WORK/server/InferenceServer.dll")
    LOADGEN=(dotnet "$WORK/loadgen/InferenceServer.LoadGenerator.dll")
fi

echo "# Returning conversations with and without the host KV tier, $(date -u '+%Y-%m-%d %H:%M') UTC"
echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/ {print $2}') GiB$(command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | sed 's/^/, /')"
# A staged application (APP) says which commit it was built from; the checkout's git metadata on the GPU machine need not.
STAGE_INFO=${APP:+$(dirname "$APP")/files/bench/gpu/out/stage-info.txt}
if [[ -n ${STAGE_INFO:-} && -f $STAGE_INFO ]]; then
    echo "- application: staged from $(head -n 1 "$STAGE_INFO")"
else
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo unknown)"
fi
echo "- command: \`bench/run-returning.sh\` (MODEL=$MODEL SERVER_ARGS='$SERVER_ARGS' KV_CACHE=$KV_CACHE HOST_TIER=$HOST_TIER CONVERSATIONS=$CONVERSATIONS INPUT_LEN=$INPUT_LEN OUTPUT_LEN=$OUTPUT_LEN FOLLOWUP_LEN=$FOLLOWUP_LEN RETURNING_LEN=$RETURNING_LEN CONCURRENCY=$CONCURRENCY)"
echo "- workload: $CONVERSATIONS first turns of $INPUT_LEN random ids + $OUTPUT_LEN greedy tokens, then each returns in order with its history + $FOLLOWUP_LEN new ids for $RETURNING_LEN tokens, at concurrency $CONCURRENCY; working set $(( CONVERSATIONS * (INPUT_LEN + OUTPUT_LEN) )) tokens against a $KV_CACHE KV cache"

# The counters that say where the returning turns' history came from, from /metrics after a run.
counters() {
    curl -sf "$URL/metrics" | grep -E '^(vllm:prefix_cache_(queries|hits)_total|vllm:external_prefix_cache_(queries|hits)_total|inference_kv_swapped_(in|out)_blocks_total|inference_kv_recomputed_tokens_total|vllm:num_preemptions_total|inference_kv_load_wait_seconds_(sum|count)|inference_kv_copy_calls_seconds_total|inference_kv_copy_out_wait_seconds_total|vllm:request_(queue|prefill)_time_seconds_(sum|count))' \
        | sed 's/{[^}]*}//' | awk '{printf "%s=%s ", $1, $2} END {print ""}'
}

declare -A P50 P99
for mode in notier tier; do
    args=(--model "$MODEL" --urls "$URL" --kv-cache-memory "$KV_CACHE" --Logging:LogLevel:Default=Warning)
    [[ $mode == tier ]] && args+=(--host-kv-cache-memory "$HOST_TIER")
    # shellcheck disable=SC2206
    args+=($SERVER_ARGS)
    echo
    echo "## $mode: ${SERVER[*]##*/} ${args[*]}"
    "${SERVER[@]}" "${args[@]}" > "$WORK/server-$mode.log" 2>&1 &
    SERVER_PID=$!
    wait_ready 300 || { echo "server not ready:"; tail -20 "$WORK/server-$mode.log"; exit 1; }
    "${LOADGEN[@]}" returning --url "$URL" --conversations "$CONVERSATIONS" --concurrency "$CONCURRENCY" --input-len "$INPUT_LEN" \
        --output-len "$OUTPUT_LEN" --followup-len "$FOLLOWUP_LEN" --returning-output-len "$RETURNING_LEN" --vocab "$VOCAB" \
        --json "$WORK/$mode.json" | tee "$WORK/$mode.txt"
    echo "metrics: $(counters)"
    P50[$mode]=$(sed -n 's/^returning turns: TTFT p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms.*/\1/p' "$WORK/$mode.txt")
    P99[$mode]=$(sed -n 's/^returning turns: TTFT p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms.*/\2/p' "$WORK/$mode.txt")
    end_server 20 || true
done

echo
echo "## Returning turns' TTFT, tier / notier"
echo "| | notier | tier | tier / notier |"
echo "|---|---:|---:|---:|"
for q in p50 p99; do
    if [[ $q == p50 ]]; then a=${P50[notier]}; b=${P50[tier]}; else a=${P99[notier]}; b=${P99[tier]}; fi
    echo "| TTFT $q (ms) | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2fx", b / a}') |"
done
echo "Saved to ${RESULTS#"$ROOT"/}"
