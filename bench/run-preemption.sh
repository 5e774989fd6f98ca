#!/usr/bin/env bash
# Preemption under a KV cache far smaller than the load, with the host KV tier (ADR 0009): what the tier copies out,
# what comes back, what is recomputed. One server, started fresh, CONCURRENCY requests of INPUT_LEN random prompt ids and
# OUTPUT_LEN greedy tokens at once, then the /metrics counters:
#
#   bash bench/run-preemption.sh                          # this checkout's server (dotnet build -c Release), default model
#   SERVER=/path/to/InferenceServer bash bench/run-preemption.sh   # another build, e.g. an older commit's worktree
#
# Settings (environment): MODEL (models/tiny-pycoder), KV_CACHE (9m: about 2,300 tokens of the default model against
# CONCURRENCY x (INPUT_LEN + OUTPUT_LEN) = 30,720), HOST_TIER (64m), CONCURRENCY (80), INPUT_LEN (256), OUTPUT_LEN (128),
# PREFIX_CACHING (true), PORT (18390), SERVER (unset: build this checkout), LOADGEN (unset: build it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${MODEL:-$ROOT/models/tiny-pycoder}
KV_CACHE=${KV_CACHE:-9m}
HOST_TIER=${HOST_TIER:-64m}
CONCURRENCY=${CONCURRENCY:-80}
INPUT_LEN=${INPUT_LEN:-256}
OUTPUT_LEN=${OUTPUT_LEN:-128}
PREFIX_CACHING=${PREFIX_CACHING:-true}
PORT=${PORT:-18390}
URL=http://127.0.0.1:$PORT

if [[ -z ${SERVER:-} ]]; then
    dotnet build "$ROOT/src/InferenceServer" -c Release -v q -nologo > /dev/null
    SERVER=$ROOT/src/InferenceServer/bin/Release/net10.0/InferenceServer
fi
if [[ -z ${LOADGEN:-} ]]; then
    dotnet build "$ROOT/bench/InferenceServer.LoadGenerator" -c Release -v q -nologo > /dev/null
    LOADGEN=$ROOT/bench/InferenceServer.LoadGenerator/bin/Release/net10.0/InferenceServer.LoadGenerator
fi

LOG=$(mktemp)
args=(--model "$MODEL" --device cpu --urls "$URL" --kv-cache-memory "$KV_CACHE" --host-kv-cache-memory "$HOST_TIER"
    --max-num-seqs "$CONCURRENCY" --max-queued-requests 4096)
[[ $PREFIX_CACHING == true ]] || args+=(--no-enable-prefix-caching)
"$SERVER" "${args[@]}" > "$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$LOG"' EXIT
for _ in $(seq 1 120); do
    curl -s -o /dev/null -w '%{http_code}' "$URL/health/ready" 2>/dev/null | grep -q 200 && break
    sleep 0.5
done

echo "server: $SERVER"
echo "load: $CONCURRENCY requests of $INPUT_LEN + $OUTPUT_LEN tokens at once; --kv-cache-memory $KV_CACHE, --host-kv-cache-memory $HOST_TIER, prefix caching $PREFIX_CACHING"
"$LOADGEN" --url "$URL" --concurrency "$CONCURRENCY" --num-prompts "$CONCURRENCY" --warmup 0 --input-len "$INPUT_LEN" \
    --output-len "$OUTPUT_LEN" --seed 0 | grep -E "ok,|Output token throughput|Mean TTFT|Mean TPOT"
curl -s "$URL/metrics" | grep -E '^(vllm:num_preemptions_total|vllm:prefix_cache_hits_total|vllm:external_prefix_cache_(queries|hits)_total|inference_kv_swapped_(out|in)_blocks_total|inference_kv_recomputed_tokens_total)' \
    | sed -E 's/\{[^}]*\}//'
