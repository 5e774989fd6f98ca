#!/usr/bin/env bash
# CPU benchmark: the server (continuous batching, streamed over HTTP) against onnxruntime-genai (static batches,
# in process) on the default model, models/tiny-pycoder, with the same random token-id prompts at each concurrency.
# Writes everything it prints to bench/results/cpu-<date>.md. Takes about 2 minutes on 2 cores.
#
# Settings (environment): PORT (18080), LEVELS (1,4,16,64), INPUT_LEN (128), OUTPUT_LEN (128),
# NUM_PROMPTS (unset: max(8, 2 * concurrency) per level), SEED (0).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-18080}
LEVELS=${LEVELS:-1,4,16,64}
INPUT_LEN=${INPUT_LEN:-128}
OUTPUT_LEN=${OUTPUT_LEN:-128}
SEED=${SEED:-0}
MODEL_DIR=$ROOT/models/tiny-pycoder
STAMP=$(date +%Y-%m-%d-%H%M)
RESULT=$ROOT/bench/results/cpu-$STAMP.md
WORK=$(mktemp -d /tmp/bench-cpu.XXXXXX)
SERVER_PID=

cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

common=(--sweep "$LEVELS" --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --seed "$SEED")
if [[ -n "${NUM_PROMPTS:-}" ]]; then
    common+=(--num-prompts "$NUM_PROMPTS")
fi

mkdir -p "$(dirname "$RESULT")"
exec > >(tee "$RESULT") 2>&1

echo "# CPU benchmark: server vs onnxruntime-genai, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(nproc) cores, $(lscpu | grep 'Model name' | sed 's/Model name: *//'), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'none (no commit yet)'), plus $(git -C "$ROOT" status --short -- src 2>/dev/null | wc -l) uncommitted changes under src/"
echo "- command: \`$(basename "$0")\` with LEVELS=$LEVELS INPUT_LEN=$INPUT_LEN OUTPUT_LEN=$OUTPUT_LEN NUM_PROMPTS=${NUM_PROMPTS:-'max(8, 2*C)'} SEED=$SEED"
echo "- workload: random token-id prompts (ids in [10, 4096)), greedy, ignore_eos; each level has its own prompts (no shared prefixes), the same on both sides"
echo "- server: \`dotnet publish -c Release\`, default options, log level Warning; the load generator runs on the same machine"
echo "- baseline: onnxruntime-genai 0.18.0 (CPU), same model.onnx, static batches of C prompts (at most 32, its limit)"
echo

# Percent of CPU time that was busy over the next 3 seconds (all cores).
cpu_busy() {
    local a b
    read -r -a a < <(grep '^cpu ' /proc/stat)
    sleep 3
    read -r -a b < <(grep '^cpu ' /proc/stat)
    local total=0 idle=$(( (b[4] + b[5]) - (a[4] + a[5]) ))
    for i in 1 2 3 4 5 6 7 8; do
        total=$(( total + b[i] - a[i] ))
    done
    echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

# Other people's builds and tests share these 2 cores: wait up to QUIET_WAIT seconds (300) for the machine to go
# quiet (under 15% busy) before measuring, and record how busy it was.
wait_quiet() {
    local busy deadline=$(( SECONDS + ${QUIET_WAIT:-300} ))
    busy=$(cpu_busy)
    while (( busy >= 15 && SECONDS < deadline )); do
        busy=$(cpu_busy)
    done
    if (( busy >= 15 )); then
        echo "WARNING: the machine was still ${busy}% busy with other work when this phase started; its numbers are noisy."
    else
        echo "(machine ${busy}% busy before this phase; load average $(cut -d' ' -f1-3 /proc/loadavg))"
    fi
    echo
}

publish() {
    for attempt in 1 2 3; do
        if dotnet publish "$ROOT/src/InferenceServer" -c Release -o "$WORK/server" --artifacts-path "$WORK/artifacts" > "$WORK/publish.log" 2>&1; then
            return 0
        fi
        echo "publish attempt $attempt failed (the server may be mid-edit):"
        grep -E ' error ' "$WORK/publish.log" | sort -u | head -5
        if [[ $attempt -lt 3 ]]; then
            sleep 60
        fi
    done
    return 1
}

echo "Building..."
publish
dotnet build "$ROOT/bench/InferenceServer.LoadGenerator" -c Release -o "$WORK/loadgen" > "$WORK/build-loadgen.log" 2>&1 || { cat "$WORK/build-loadgen.log"; exit 1; }
dotnet build "$ROOT/bench/InferenceServer.GenAiBaseline" -c Release -o "$WORK/genai" > "$WORK/build-genai.log" 2>&1 || { cat "$WORK/build-genai.log"; exit 1; }

echo
echo "## Server: continuous batching over HTTP (vllm-bench-serve style load generator)"
echo
wait_quiet
# The app finds models/tiny-pycoder above its working directory.
(cd "$ROOT" && exec dotnet "$WORK/server/InferenceServer.dll" --urls "http://127.0.0.1:$PORT" --Logging:LogLevel:Default=Warning) > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
ready=
for _ in $(seq 1 240); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        break
    fi
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health/ready" || true)" == 200 ]]; then
        ready=1
        break
    fi
    sleep 0.5
done
if [[ -z "$ready" ]]; then
    echo "the server did not become ready:"
    cat "$WORK/server.log"
    exit 1
fi

server_status=0
dotnet "$WORK/loadgen/InferenceServer.LoadGenerator.dll" --url "http://127.0.0.1:$PORT" \
    --check-reference "$MODEL_DIR/reference.json" --warmup 2 "${common[@]}" --json "$WORK/server.json" || server_status=$?
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
echo "(machine $(cpu_busy)% busy right after this phase: other work running during it would show here)"

echo
echo "## Baseline: onnxruntime-genai static batches (in process)"
echo
wait_quiet
genai_status=0
dotnet "$WORK/genai/InferenceServer.GenAiBaseline.dll" --model-dir "$MODEL_DIR" --work-dir "$WORK/genai-model" \
    --warmup 2 "${common[@]}" --json "$WORK/genai.json" || genai_status=$?
echo "(machine $(cpu_busy)% busy right after this phase)"

echo
echo "## Comparison (ratio = server / baseline)"
echo
dotnet "$WORK/loadgen/InferenceServer.LoadGenerator.dll" compare --server "$WORK/server.json" --baseline "$WORK/genai.json"
echo
echo "Exit status: load generator $server_status, baseline $genai_status (non-zero: a failed request or a greedy mismatch)."
echo "Saved to ${RESULT#"$ROOT"/}"
