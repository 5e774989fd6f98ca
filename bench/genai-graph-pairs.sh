#!/usr/bin/env bash
# onnxruntime-genai on the default model's model.onnx as it is against the same model as the server rewrites it at load
# (ADR 0004, `InferenceServer rewrite`): the graph rewrite's effect alone, with no server in the way. Each level runs on
# both graphs back to back (the order alternates by round); prints each pair's tok/s and ratio (rewritten / original).
# Settings (environment): LEVELS (1,4,16,64), ROUNDS (3). Takes about 4 minutes on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LEVELS=${LEVELS:-1,4,16,64}
ROUNDS=${ROUNDS:-3}
WORK=$(mktemp -d /tmp/genai-graph-pairs.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

dotnet build "$ROOT/bench/InferenceServer.GenAiBaseline" -c Release -o "$WORK/genai" > "$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
dotnet run --project "$ROOT/src/InferenceServer" -c Release -- rewrite "$ROOT/models/tiny-pycoder" --out "$WORK/rewritten"

run() {
    # $1 model folder, $2 genai's folder for it (under $WORK), $3 concurrency
    local count=$(( $3 * 4 > 32 ? $3 * 4 : 32 ))
    dotnet "$WORK/genai/InferenceServer.GenAiBaseline.dll" --model-dir "$1" --work-dir "$WORK/$2" --sweep "$3" --num-prompts "$count" \
        --input-len 128 --output-len 128 --warmup 2 --skip-check | grep -m1 -oE '[0-9.]+ output tok/s' | cut -d' ' -f1
}

echo "round level original_tok_s rewritten_tok_s rewritten/original"
for (( round = 1; round <= ROUNDS; round++ )); do
    for level in ${LEVELS//,/ }; do
        if (( round % 2 )); then
            original=$(run "$ROOT/models/tiny-pycoder" genai-original "$level"); rewritten=$(run "$WORK/rewritten" genai-rewritten "$level")
        else
            rewritten=$(run "$WORK/rewritten" genai-rewritten "$level"); original=$(run "$ROOT/models/tiny-pycoder" genai-original "$level")
        fi
        echo "$round c$level $original $rewritten $(awk -v a="$original" -v b="$rewritten" 'BEGIN { printf "%.2fx", b / a }')"
    done
done
