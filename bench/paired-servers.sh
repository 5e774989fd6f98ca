#!/usr/bin/env bash
# Paired CPU benchmark of two commits of the server (a refactor's "within noise" check, issue 20): both are published
# from git worktrees, started side by side on loopback (one idles while the other is measured), and the load generator
# runs each level on each side back to back (each server from its own checkout, so each finds its own default model), ROUNDS times, alternating which side goes first. Prints per level the
# median of the rounds' paired ratios (after / before) of output tok/s and TPOT p50, and writes everything it prints to
# bench/results/paired-<before>-<after>-<date>.md.
#
# Two configurations of one commit compare the same way: give the same ref twice (it is published once) and the
# options that differ, e.g. attention offloading's split against the fused server on the CPU:
#   BUILD=--split AFTER_ARGS="--attention-device cpu" bench/paired-servers.sh HEAD HEAD
#
# Usage: bench/paired-servers.sh BEFORE_REF [AFTER_REF=HEAD]
# Settings (environment): LEVELS (1,16,64), ROUNDS (5), INPUT_LEN (128), OUTPUT_LEN (128), SEED (0),
# BEFORE_ARGS / AFTER_ARGS (more options for that side's server), BUILD (unset: each side serves its checkout's default
# model; else both serve `InferenceServer build --checkpoint models/tiny-pycoder $BUILD`, built by the before side).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BEFORE=$(git -C "$ROOT" rev-parse --short "${1:?usage: bench/paired-servers.sh BEFORE_REF [AFTER_REF]}")
AFTER=$(git -C "$ROOT" rev-parse --short "${2:-HEAD}")
LEVELS=${LEVELS:-1,16,64}
ROUNDS=${ROUNDS:-5}
INPUT_LEN=${INPUT_LEN:-128}
OUTPUT_LEN=${OUTPUT_LEN:-128}
SEED=${SEED:-0}
BEFORE_ARGS=${BEFORE_ARGS:-}
AFTER_ARGS=${AFTER_ARGS:-}
BUILD=${BUILD:-}
WORK=$(mktemp -d /tmp/paired.XXXXXX)
RESULT=$ROOT/bench/results/paired-$BEFORE-$AFTER-$(date -u +%Y-%m-%d-%H%M).md
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    for side in before after; do git -C "$ROOT" worktree remove --force "$WORK/src-$side" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

publish() { # side ref
    if [[ $1 == after && $2 == "$BEFORE" ]]; then   # one commit, two configurations: one publish serves both
        ln -s "$WORK/src-before" "$WORK/src-after"
        ln -s "$WORK/before" "$WORK/after"
        return
    fi
    git -C "$ROOT" worktree add -q --detach "$WORK/src-$1" "$2"
    dotnet publish "$WORK/src-$1/src/InferenceServer" -c Release -o "$WORK/$1" --artifacts-path "$WORK/artifacts-$1" > "$WORK/publish-$1.log" 2>&1 \
        || { tail -20 "$WORK/publish-$1.log"; exit 1; }
}

start() { # side port options...
    local side=$1 port=$2
    shift 2
    local model=()
    [[ -n $BUILD ]] && model=(--model "$WORK/model")
    # shellcheck disable=SC2068 # the options are words on purpose
    (cd "$WORK/src-$side" && exec dotnet "$WORK/$side/InferenceServer.dll" --urls "http://127.0.0.1:$port" --Logging:LogLevel:Default=Warning "${model[@]}" $@) > "$WORK/server-$side.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 240); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/ready" || true)" == 200 ]] && return 0
        sleep 0.5
    done
    echo "the $side server did not become ready:"; cat "$WORK/server-$side.log"; exit 1
}

run() { # side port round level
    local prompts=$(( $4 * 4 > 32 ? $4 * 4 : 32 ))
    dotnet "$WORK/loadgen/InferenceServer.LoadGenerator.dll" --url "http://127.0.0.1:$2" --sweep "$4" --num-prompts "$prompts" \
        --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --seed "$SEED" --warmup 2 --json "$WORK/$1-$3-$4.json" > "$WORK/$1-$3-$4.out" 2>&1
    printf '%-6s round %s %s\n' "$1" "$3" "$(grep -m1 '^concurrency' "$WORK/$1-$3-$4.out" || echo 'no result')"
}

mkdir -p "$(dirname "$RESULT")"
exec > >(tee "$RESULT") 2>&1
echo "# Paired CPU benchmark: $BEFORE (before) vs $AFTER (after), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(nproc) cores, $(lscpu | grep 'Model name' | sed 's/Model name: *//'), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "- command: \`bench/paired-servers.sh $BEFORE $AFTER\` (LEVELS=$LEVELS ROUNDS=$ROUNDS INPUT_LEN=$INPUT_LEN OUTPUT_LEN=$OUTPUT_LEN SEED=$SEED BEFORE_ARGS='$BEFORE_ARGS' AFTER_ARGS='$AFTER_ARGS' BUILD='$BUILD')"
served=models/tiny-pycoder
[[ -n $BUILD ]] && served="models/tiny-pycoder's checkpoint built with \`build $BUILD\`"
echo "- both servers: \`dotnet publish -c Release\` on $served, options: before '${BEFORE_ARGS:-default}', after '${AFTER_ARGS:-default}'; started side by side; per round every level runs on both, the first side alternating"
echo
publish before "$BEFORE"
publish after "$AFTER"
dotnet build "$ROOT/bench/InferenceServer.LoadGenerator" -c Release -o "$WORK/loadgen" > "$WORK/loadgen.log" 2>&1 || { cat "$WORK/loadgen.log"; exit 1; }
if [[ -n $BUILD ]]; then
    # shellcheck disable=SC2086 # BUILD is options
    dotnet "$WORK/before/InferenceServer.dll" build --checkpoint "$WORK/src-before/models/tiny-pycoder" --out "$WORK/model" $BUILD | tail -1
fi
start before 18181 $BEFORE_ARGS
start after 18182 $AFTER_ARGS
IFS=, read -ra levels <<< "$LEVELS"
for level in "${levels[@]}"; do run before 18181 0 "$level" > /dev/null; run after 18182 0 "$level" > /dev/null; done  # warm-up sweep
echo '```'
for round in $(seq 1 "$ROUNDS"); do
    for level in "${levels[@]}"; do
        if (( round % 2 )); then run before 18181 "$round" "$level"; run after 18182 "$round" "$level"
        else run after 18182 "$round" "$level"; run before 18181 "$round" "$level"; fi
    done
done
echo '```'
echo
python3 - "$WORK" "$ROUNDS" "$LEVELS" <<'PY'
import json, statistics, sys
work, rounds, levels = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3].split(",")]
def load(side, r, c):
    return json.load(open(f"{work}/{side}-{r}-{c}.json"))["levels"][0]
print("| concurrency | output tok/s after/before (median of paired ratios) | spread (min-max) | TPOT p50 after/before | spread |")
print("|---:|---:|---|---:|---|")
for c in levels:
    tput, tpot = [], []
    for r in range(1, rounds + 1):
        b, a = load("before", r, c), load("after", r, c)
        tput.append(a["output_throughput"] / b["output_throughput"])
        tpot.append(a["tpot_ms"]["p50"] / b["tpot_ms"]["p50"])
    print(f"| {c} | {statistics.median(tput):.3f} | {min(tput):.3f}-{max(tput):.3f} | {statistics.median(tpot):.3f} | {min(tpot):.3f}-{max(tpot):.3f} |")
PY
