#!/usr/bin/env bash
# CPU benchmark: the server (continuous batching, streamed over HTTP) against onnxruntime-genai (static batches,
# in process) on the default model, models/tiny-pycoder, with the same random token-id prompts at each concurrency.
# Writes everything it prints to bench/results/cpu-<date>.md. Takes 3 to 6 minutes on 2 cores.
#
# This machine's speed drifts (it is a VM on a shared host, and other people's builds and tests run on the same
# 2 cores), so the two sides run alternately for ROUNDS rounds and the comparison takes medians over the rounds.
# Each round waits for the machine to go quiet and records how much CPU other processes took while it ran.
#
# Settings (environment): PORT (18080), LEVELS (1,4,16,64), INPUT_LEN (128), OUTPUT_LEN (128),
# NUM_PROMPTS (unset: max(8, 2 * concurrency) per level), SEED (0), ROUNDS (3), QUIET_WAIT (300 s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-18080}
LEVELS=${LEVELS:-1,4,16,64}
INPUT_LEN=${INPUT_LEN:-128}
OUTPUT_LEN=${OUTPUT_LEN:-128}
SEED=${SEED:-0}
ROUNDS=${ROUNDS:-3}
MODEL_DIR=$ROOT/models/tiny-pycoder
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

common=(--sweep "$LEVELS" --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --seed "$SEED")
if [[ -n "${NUM_PROMPTS:-}" ]]; then
    common+=(--num-prompts "$NUM_PROMPTS")
fi

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

# Runs one round of phase $1 ("server" or "genai") and prints its output with how much of the machine other
# processes took meanwhile.
run_phase() {
    local phase=$1 round=$2
    if [[ $phase == server ]]; then
        start_server
        measure dotnet "$WORK/loadgen/InferenceServer.LoadGenerator.dll" --url "http://127.0.0.1:$PORT" \
            --check-reference "$MODEL_DIR/reference.json" --warmup 2 "${common[@]}" --json "$WORK/$phase-$round.json"
        stop_server
        echo "### Round $round: server, continuous batching over HTTP (vllm-bench-serve style load generator)"
    else
        measure dotnet "$WORK/genai/InferenceServer.GenAiBaseline.dll" --model-dir "$MODEL_DIR" --work-dir "$WORK/genai-model" \
            --warmup 2 "${common[@]}" --json "$WORK/$phase-$round.json"
        echo "### Round $round: onnxruntime-genai, static batches in process"
    fi

    echo
    echo "(other processes used ${OTHER}% of the machine meanwhile; exit status $STATUS)"
    echo
    cat "$WORK/phase.out"
    echo
    if (( STATUS != 0 )); then
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
echo "- command: \`bench/run-cpu.sh\` (LEVELS=$LEVELS INPUT_LEN=$INPUT_LEN OUTPUT_LEN=$OUTPUT_LEN NUM_PROMPTS=${NUM_PROMPTS:-'max(8, 2*C)'} SEED=$SEED)"
echo "- workload: random token-id prompts (ids in [10, 4096)), greedy, ignore_eos; each level has its own prompts (no shared prefixes), the same on both sides"
echo "- server: \`dotnet publish -c Release\`, default options, log level Warning, restarted each round; the load generator runs on the same 2 cores"
echo "- baseline: onnxruntime-genai 0.18.0 (CPU), same model.onnx, static batches of C prompts (at most 32, its limit)"
echo "- $ROUNDS rounds, server then baseline in each; the comparison at the end takes medians over the rounds"
echo

echo "Building..."
publish
dotnet build "$ROOT/bench/InferenceServer.LoadGenerator" -c Release -o "$WORK/loadgen" > "$WORK/build-loadgen.log" 2>&1 || { cat "$WORK/build-loadgen.log"; exit 1; }
dotnet build "$ROOT/bench/InferenceServer.GenAiBaseline" -c Release -o "$WORK/genai" > "$WORK/build-genai.log" 2>&1 || { cat "$WORK/build-genai.log"; exit 1; }

FAILED=0
for (( round = 1; round <= ROUNDS; round++ )); do
    echo
    wait_quiet
    run_phase server "$round"
    run_phase genai "$round"
done

echo
echo "## Comparison (medians over the rounds; ratio = server / baseline)"
echo
servers=$(seq -f "$WORK/server-%g.json" -s, 1 "$ROUNDS")
genais=$(seq -f "$WORK/genai-%g.json" -s, 1 "$ROUNDS")
dotnet "$WORK/loadgen/InferenceServer.LoadGenerator.dll" compare --server "$servers" --baseline "$genais"
echo
if (( FAILED )); then
    echo "WARNING: a round failed requests or its greedy check (non-zero exit status above)."
fi
echo "Saved to ${RESULT#"$ROOT"/}"
