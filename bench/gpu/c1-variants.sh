#!/usr/bin/env bash
# Concurrency-1 diagnostics for the GPU benchmark: the same built model served with one setting changed at a time
# (default, no CUDA graphs, workstation GC),
# 16 streamed requests each (128 prompt tokens, 128 new), to see what the serving path adds to the runner's own step
# time (`InferenceServer bench latency`). Run on the GPU machine after run-llama1b.sh (it reuses its build):
#
#   source /tmp/gpu/env && bash bench/gpu/c1-variants.sh [/tmp/llama1b/checkpoint-fp16-cuda]
#
# Each variant prints the load generator's summary and the engine's own mean inter-token time (from /metrics).
set -uo pipefail
BUILT=${1:-/tmp/llama1b/checkpoint-fp16-cuda}
APP=${APP:-/tmp/gpu/app}
PORT=${PORT:-18700}
URL=http://127.0.0.1:$PORT
OUT=${OUT:-/tmp}

engine_itl() {
    curl -s "$URL/metrics" | grep -E '^vllm:inter_token_latency_seconds_(sum|count)' | awk '{print $2}' | paste -sd' '
}

# variant NAME "ENV=VALUE ..." "EXTRA SERVER ARGS"
variant() {
    local name=$1 environment=$2 extra=$3
    echo "== $name: env [$environment] args [$extra]"
    # shellcheck disable=SC2086
    env $environment "$APP/InferenceServer" --model "$BUILT" --device cuda --urls "$URL" --max-num-seqs 256 \
        --max-num-batched-tokens 8192 $extra > "$OUT/c1-$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 120); do curl -sf "$URL/health/ready" > /dev/null && break; sleep 0.5; done
    "$APP/InferenceServer.LoadGenerator" --url "$URL" --concurrency 1 --num-prompts 4 --warmup 2 --input-len 128 \
        --output-len 128 --vocab 128000 --seed 5 > /dev/null 2>&1
    local before after
    before=$(engine_itl)
    timeout 120 "$APP/InferenceServer.LoadGenerator" --url "$URL" --concurrency 1 --num-prompts 16 --warmup 0 \
        --input-len 128 --output-len 128 --vocab 128000 --seed 0 2>&1 | grep -E "output tok/s|TPOT|ITL" | head -8
    after=$(engine_itl)
    echo "engine inter-token latency: $(echo "$before $after" | awk 'NF == 4 && $4 > $2 { printf "mean %.3f ms over %d tokens", ($3 - $1) / ($4 - $2) * 1000, $4 - $2 }')"
    kill "$pid"; wait "$pid" 2>/dev/null
}

variant default "" "--kv-cache-memory 16g"
variant eager "" "--kv-cache-memory 16g --cuda-graphs false"
variant workstation-gc "DOTNET_gcServer=0" "--kv-cache-memory 16g"
