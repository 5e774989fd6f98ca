#!/usr/bin/env bash
# CPU benchmark: the server (continuous batching, streamed over HTTP) against onnxruntime-genai (static batches,
# in process) on the default model, models/tiny-pycoder, with the same random token-id prompts at each concurrency.
# Writes everything it prints to bench/results/cpu-<date>.md. Takes 8 to 12 minutes on 2 cores.
#
# This machine's speed drifts by 20% and more within a minute (it is a VM on a shared host), so the two sides run
# back to back, level by level: in each of ROUNDS rounds, every level runs once on each side (the side that goes first
# alternates between rounds), and the comparison takes, per level, the median of the rounds' paired ratios. Each
# round waits for the machine to go quiet and each run records how much CPU other processes took while it ran.
#
# The server starts once and is warmed up by a full sweep before the first measured run, as a deployed server is; the
# load generator warms itself up (and the server's connections) with two requests before each measured run.
#
# Settings (environment): PORT (18080), LEVELS (1,4,16,64), INPUT_LEN (128), OUTPUT_LEN (128),
# NUM_PROMPTS (unset: max(32, 4 * concurrency) per level), SEED (0), ROUNDS (5), QUIET_WAIT (300 s),
# GENAI_GRAPH (original: onnxruntime-genai runs model.onnx as it is, as its users would; rewritten: it runs the graph as the
# server rewrites it at load, written out by `InferenceServer rewrite`, to compare the two engines on the same graph).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-18080}
LEVELS=${LEVELS:-1,4,16,64}
INPUT_LEN=${INPUT_LEN:-128}
OUTPUT_LEN=${OUTPUT_LEN:-128}
SEED=${SEED:-0}
ROUNDS=${ROUNDS:-5}
MODEL_DIR=$ROOT/models/tiny-pycoder
GENAI_GRAPH=${GENAI_GRAPH:-original}
[[ $GENAI_GRAPH == original || $GENAI_GRAPH == rewritten ]] || { echo "GENAI_GRAPH must be original or rewritten, not '$GENAI_GRAPH'"; exit 2; }
GENAI_MODEL_DIR=$MODEL_DIR
RESULT=$ROOT/bench/results/cpu-$(date +%Y-%m-%d-%H%M).md
WORK=$(mktemp -d /tmp/bench-cpu.XXXXXX)
TICKS=$(getconf CLK_TCK)
CORES=$(nproc)
SERVER_PID=

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}

cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

common=(--input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --seed "$SEED" --warmup 2)

# Requests per level: NUM_PROMPTS, or max(32, 4 * concurrency): at least 2 s per run at each level (this machine drifts
# within seconds, so shorter runs mostly measure the drift).
prompts_for() {
    if [[ -n "${NUM_PROMPTS:-}" ]]; then
        echo "$NUM_PROMPTS"
    else
        echo $(( $1 * 4 > 32 ? $1 * 4 : 32 ))
    fi
}

# CPU ticks spent by the whole machine (all cores) since boot.
machine_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# CPU ticks spent by process $1 so far.
process_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Percent of the machine that was busy over the next 3 seconds.
cpu_busy() {
    local before after
    before=$(machine_ticks)
    sleep 3
    after=$(machine_ticks)
    echo $(( 100 * (after - before) / (3 * TICKS * CORES) ))
}

# Waits up to QUIET_WAIT seconds for the machine to go quiet (under 15% busy).
wait_quiet() {
    local deadline=$(( SECONDS + ${QUIET_WAIT:-300} ))
    while (( $(cpu_busy) >= 15 && SECONDS < deadline )); do
        :
    done
}

# Runs "$@" (a benchmark client) and sets OTHER to the percent of the machine that processes other than the client and
# the server used meanwhile.
measure() {
    local start_machine start_server end_machine end_server client started=$SECONDS
    start_machine=$(machine_ticks)
    start_server=$( [[ -n "$SERVER_PID" ]] && process_ticks "$SERVER_PID" || echo 0)
    STATUS=0
    /usr/bin/time -f '%U %S' -o "$WORK/time" "$@" > "$WORK/phase.out" 2>&1 || STATUS=$?
    end_machine=$(machine_ticks)
    end_server=$( [[ -n "$SERVER_PID" ]] && process_ticks "$SERVER_PID" || echo 0)
    client=$(awk -v t="$TICKS" 'END { printf "%d", ($1 + $2) * t }' "$WORK/time")
    local elapsed=$(( SECONDS - started > 0 ? SECONDS - started : 1 ))
    local other=$(( (end_machine - start_machine) - (end_server - start_server) - client ))
    OTHER=$(( other > 0 ? 100 * other / (elapsed * TICKS * CORES) : 0 ))
}

start_server() {
    # The app finds models/tiny-pycoder above its working directory.
    (cd "$ROOT" && exec dotnet "$WORK/server/InferenceServer.dll" --urls "http://127.0.0.1:$PORT" --Logging:LogLevel:Default=Warning) > "$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 240); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            break
        fi
        if [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health/ready" || true)" == 200 ]]; then
            return 0
        fi
        sleep 0.5
    done
    echo "the server did not become ready:"
    cat "$WORK/server.log"
    exit 1
}

# Runs level $3 of round $2 on side $1 ("server" or "genai") and prints its summary line with how much of the machine
# other processes took meanwhile.
run_level() {
    local side=$1 round=$2 level=$3 out
    out=$WORK/$side-$round-$level.json
    if [[ $side == server ]]; then
        measure dotnet "$WORK/loadgen/InferenceServer.LoadGenerator.dll" --url "http://127.0.0.1:$PORT" \
            --sweep "$level" --num-prompts "$(prompts_for "$level")" "${common[@]}" --json "$out"
    else
        measure dotnet "$WORK/genai/InferenceServer.GenAiBaseline.dll" --model-dir "$GENAI_MODEL_DIR" --work-dir "$WORK/genai-model" \
            --sweep "$level" --num-prompts "$(prompts_for "$level")" "${common[@]}" --skip-check --json "$out"
    fi

    printf '%-6s %s (other processes %s%%, exit %s)\n' "$side" "$(grep -m1 '^concurrency' "$WORK/phase.out" || echo 'no result')" "$OTHER" "$STATUS"
    if (( STATUS != 0 )); then
        sed 's/^/    /' "$WORK/phase.out" | head -20
        FAILED=1
    fi
}

publish() {
    for attempt in 1 2 3; do
        if dotnet publish "$ROOT/src/InferenceServer" -c Release -o "$WORK/server" --artifacts-path "$WORK/artifacts" > "$WORK/publish.log" 2>&1; then
            return 0
        fi
        echo "publish attempt $attempt failed (the server may be mid-edit):"
        grep -E ' error ' "$WORK/publish.log" | sort -u | head -5
        if (( attempt < 3 )); then
            sleep 60
        fi
    done
    return 1
}

mkdir -p "$(dirname "$RESULT")"
exec > >(tee "$RESULT") 2>&1

echo "# CPU benchmark: server vs onnxruntime-genai, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $CORES cores, $(lscpu | grep 'Model name' | sed 's/Model name: *//'), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'none (no commit yet)'), plus $(git -C "$ROOT" status --short -- src 2>/dev/null | wc -l) uncommitted changes under src/"
echo "- command: \`bench/run-cpu.sh\` (GENAI_GRAPH=$GENAI_GRAPH LEVELS=$LEVELS INPUT_LEN=$INPUT_LEN OUTPUT_LEN=$OUTPUT_LEN NUM_PROMPTS=${NUM_PROMPTS:-'max(32, 4*C)'} ROUNDS=$ROUNDS SEED=$SEED)"
echo "- workload: random token-id prompts (ids in [10, 4096)), greedy, ignore_eos; each level has its own prompts (no shared prefixes), the same on both sides"
echo "- server: \`dotnet publish -c Release\`, default options, log level Warning, started once and warmed up by a full sweep; the load generator runs on the same 2 cores; the server rewrites the graph at load (docs/adr/0004), onnxruntime-genai runs model.onnx as it is"
if [[ $GENAI_GRAPH == original ]]; then
    echo "- baseline: onnxruntime-genai 0.18.0 (CPU), same model.onnx as it is, static batches of C prompts (at most 32, its limit)"
else
    echo "- baseline: onnxruntime-genai 0.18.0 (CPU), on model.onnx as the server rewrites it at load (\`InferenceServer rewrite\`), static batches of C prompts (at most 32, its limit)"
fi
echo "- $ROUNDS rounds; in each, every level runs on both sides back to back (which goes first alternates by round); requests per level: ${NUM_PROMPTS:-max(32, 4*C)}, after 2 warm-up requests"
echo

echo "Building..."
publish
dotnet build "$ROOT/bench/InferenceServer.LoadGenerator" -c Release -o "$WORK/loadgen" > "$WORK/build-loadgen.log" 2>&1 || { cat "$WORK/build-loadgen.log"; exit 1; }
dotnet build "$ROOT/bench/InferenceServer.GenAiBaseline" -c Release -o "$WORK/genai" > "$WORK/build-genai.log" 2>&1 || { cat "$WORK/build-genai.log"; exit 1; }
if [[ $GENAI_GRAPH == rewritten ]]; then
    GENAI_MODEL_DIR=$WORK/rewritten-model
    dotnet "$WORK/server/InferenceServer.dll" rewrite "$MODEL_DIR" --out "$GENAI_MODEL_DIR" || exit 1
fi

FAILED=0
echo
echo "## Greedy check and warm-up"
echo
start_server
dotnet "$WORK/loadgen/InferenceServer.LoadGenerator.dll" --url "http://127.0.0.1:$PORT" --check-reference "$MODEL_DIR/reference.json" \
    --sweep "$LEVELS" --warmup 2 --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --seed $(( SEED + 1000 )) > "$WORK/warmup.out" 2>&1 || FAILED=1
echo "server: $(grep -m1 '^greedy check' "$WORK/warmup.out" || echo 'greedy check missing')"
echo "server warm-up sweep (not measured): $(grep -c '^concurrency' "$WORK/warmup.out") levels"
echo "server: $(grep -m1 -o 'graph rewritten at load.*' "$WORK/server.log" || echo 'graph run as it is (no load-time rewrite applied)')"
dotnet "$WORK/genai/InferenceServer.GenAiBaseline.dll" --model-dir "$GENAI_MODEL_DIR" --work-dir "$WORK/genai-model" --sweep 1 \
    --num-prompts 1 --output-len 8 --warmup 0 > "$WORK/genai-check.out" 2>&1 || FAILED=1
echo "onnxruntime-genai: $(grep -m1 '^greedy check' "$WORK/genai-check.out" || echo 'greedy check missing')"

echo
echo "## Measured runs (server: continuous batching over HTTP, vllm-bench-serve style load generator; genai: static batches in process)"
for (( round = 1; round <= ROUNDS; round++ )); do
    echo
    wait_quiet
    echo "### Round $round"
    echo
    for level in ${LEVELS//,/ }; do
        if (( round % 2 )); then
            run_level server "$round" "$level"
            run_level genai "$round" "$level"
        else
            run_level genai "$round" "$level"
            run_level server "$round" "$level"
        fi
    done
done
stop_server

echo
echo "## Comparison (ratio = server / baseline)"
echo
servers=
genais=
for (( round = 1; round <= ROUNDS; round++ )); do
    for level in ${LEVELS//,/ }; do
        servers+=${servers:+,}$WORK/server-$round-$level.json
        genais+=${genais:+,}$WORK/genai-$round-$level.json
    done
done
dotnet "$WORK/loadgen/InferenceServer.LoadGenerator.dll" compare --server "$servers" --baseline "$genais"
echo
echo "Medians of each side's runs:"
echo
dotnet "$WORK/loadgen/InferenceServer.LoadGenerator.dll" medians --reports "$servers" --label server
dotnet "$WORK/loadgen/InferenceServer.LoadGenerator.dll" medians --reports "$genais" --label onnxruntime-genai
echo
if (( FAILED )); then
    echo "WARNING: a round failed requests or its greedy check (non-zero exit status above)."
fi
echo "Saved to ${RESULT#"$ROOT"/}"
