#!/usr/bin/env bash
# The Llama-3.2-1B-shaped benchmark of issue 9, run ON the GPU machine once bench/gpu/stage-bench.sh's pieces are
# unpacked (bench/gpu/README.md has the sequence of device calls):
#
#   bash .gpu/unpack.sh && source /tmp/gpu/env && bash bench/gpu/run-llama1b.sh
#
# 1. writes a random-weight Llama-3.2-1B-shaped checkpoint (llama1b/make_checkpoint.py) under /tmp/llama1b,
# 2. builds it for CUDA (`InferenceServer build --dtype fp16 --device cuda`),
# 3. serves it and drives it with the load generator: output tokens/s at each concurrency of LEVELS with
#    INPUT_LEN-token prompts and OUTPUT_LEN new tokens (ignore_eos), then TTFT at concurrency 1 for TTFT_LENS,
#    and the greedy tokens of two fixed prompts,
# 4. stops the server and runs Hugging Face generate() on the same shapes (llama1b/hf_reference.py),
# 5. prints one Markdown report (llama1b/report.py): both sides, the ratios and issue 9's goals.
#
# Everything goes to $OUT (7 files): report.md, results.json, reference.json, run.log (all this script printed),
# loadgen.txt, server.log (start and end of the server's log), build.log. The report is written whatever fails, and
# the exit status is non-zero when a step failed. Every step has a timeout inside a total budget (BUDGET_S, 520 s)
# that keeps time for the reference; the checkpoint and the built model are kept in /tmp/llama1b and reused by a
# later call on the same machine (the build is redone when the staged application changed).
#
# Issue 19 adds (each step skipped, said so in the report, when the budget has no time left for it):
#  - SHAPE=8b: a Llama-3.1-8B-shaped checkpoint (32 layers, hidden 4096, 32/8 heads of 128, MLP 14336, vocabulary
#    128256; make_checkpoint.py --shape 8b) instead of the 1B one; DTYPE=int4 builds 4-bit MatMulNBits projections;
#  - BANDWIDTH=1: the device's copy bandwidth (torch, llama1b/bandwidth.py) and the concurrency-1 bound it implies
#    (weights bytes / bandwidth);
#  - INVARIANCE=1: the batch-invariance rate (llama1b/invariance.py): each of max(8, C) prompts sent 4 times within
#    one run at each concurrency of INV_LEVELS (1,64,256), the share whose 4 greedy outputs agree; with DETERMINISTIC=1
#    again on a server started with --deterministic, with its throughput at DET_LEVELS (1,64);
#  - PROFILE=1: kernels per decode step from ONNX Runtime's profiler (INFERENCE_SERVER_ORT_PROFILE on `bench latency
#    --cuda-graphs false`, llama1b/kernels.py) for the fused graph and one built with `--fuse off` (ADR 0007).
# SKIP_REFERENCE=1 keeps only 10 s back for the end (not REFERENCE_S). For the 8B shape, SKIP_REFERENCE=1 and fewer
# LEVELS fit one call: the checkpoint (about 16 GB) takes a minute or two to write and the build as long again.
#
# Settings (environment): SHAPE (1b; 8b), DTYPE (fp16; bf16, int4), TINY (0; 1 = the 2-layer hidden-256 variant), LEVELS (1,16,64,256),
# INPUT_LEN (128), OUTPUT_LEN (128), TTFT_LENS (512,2048), PROMPTS_PER_CONC (4; at least MIN_PROMPTS, 16, per level),
# KV_CACHE (16g), MAX_NUM_BATCHED_TOKENS (8192), PORT (18600), BUDGET_S (520), REFERENCE_S (150: kept for the
# reference), SKIP_REFERENCE (0), SERVER_ARGS (extra server options), APP (/tmp/gpu/app), FILES (/tmp/gpu/files),
# WORK (/tmp/llama1b). For checks of this script elsewhere: MODEL (serve this model folder instead of building one),
# DEVICE (cuda), VOCAB (128000: prompt ids are drawn from [10, VOCAB)).
set -uo pipefail

START=$SECONDS
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APP=${APP:-/tmp/gpu/app}
FILES=${FILES:-/tmp/gpu/files}
WORK=${WORK:-/tmp/llama1b}
OUT=${OUT:-$WORK/out}
DTYPE=${DTYPE:-fp16}
TINY=${TINY:-0}
SHAPE=${SHAPE:-1b}
(( TINY )) && SHAPE=tiny
BANDWIDTH=${BANDWIDTH:-1}
INVARIANCE=${INVARIANCE:-1}
INV_LEVELS=${INV_LEVELS:-1,64,256}
INV_TOKENS=${INV_TOKENS:-32}
DETERMINISTIC=${DETERMINISTIC:-1}
DET_LEVELS=${DET_LEVELS:-1,64}
# The unfused 8B build would be another 16 GB on a 64 GB disk: off unless asked for.
PROFILE=${PROFILE:-$([[ $SHAPE == 8b ]] && echo 0 || echo 1)}
# The 8B shape's KV for one 131072-token sequence (17 GB) is more than KV_CACHE: serve it with a shorter context.
MAX_MODEL_LEN=${MAX_MODEL_LEN:-$([[ $SHAPE == 8b ]] && echo 8192 || echo)}
LEVELS=${LEVELS:-1,16,64,256}
INPUT_LEN=${INPUT_LEN:-128}
OUTPUT_LEN=${OUTPUT_LEN:-128}
TTFT_LENS=${TTFT_LENS:-512,2048}
PROMPTS_PER_CONC=${PROMPTS_PER_CONC:-4}
MIN_PROMPTS=${MIN_PROMPTS:-16}
KV_CACHE=${KV_CACHE:-16g}
MAX_NUM_BATCHED_TOKENS=${MAX_NUM_BATCHED_TOKENS:-8192}
PORT=${PORT:-18600}
BUDGET_S=${BUDGET_S:-520}
REFERENCE_S=${REFERENCE_S:-150}
SKIP_REFERENCE=${SKIP_REFERENCE:-0}
# Nothing comes after the load when the reference is skipped: keep only a little for the report.
(( SKIP_REFERENCE )) && REFERENCE_S=10
VOCAB=${VOCAB:-128000}
DEVICE=${DEVICE:-cuda}
URL=http://127.0.0.1:$PORT
export PYTHONUNBUFFERED=1

# The Python pieces: beside this script (the checkout), else where the staged extra paths were unpacked.
PY=$HERE/llama1b
[[ -f $PY/make_checkpoint.py ]] || PY=$FILES/bench/gpu/llama1b

case $SHAPE in
    tiny) CKPT=$WORK/checkpoint-tiny ;;
    8b) CKPT=$WORK/checkpoint-8b ;;
    *) SHAPE=1b; CKPT=$WORK/checkpoint ;;
esac
BUILT=${MODEL:-$CKPT-$DTYPE-cuda}
RUN=$WORK/run

# elapsed, budget, step, http_ok (beside this script in the checkout, else where the staged extra paths were unpacked).
# shellcheck source=lib.sh
source "$HERE/lib.sh" 2>/dev/null || source "$FILES/bench/gpu/lib.sh"
begin_run

stop_server() {
    end_server 40
    excerpt_log "$RUN/server.log" "$OUT/server.log" 80 300
}

# start_server LABEL EXTRA...: starts the server with server_args plus EXTRA, logging to $RUN/server.log; waits for
# /health/ready within the budget; the step's row is LABEL. Returns 0 when ready.
start_server() {
    local label=$1 t=$SECONDS ready=0
    shift
    "$APP/InferenceServer" "${server_args[@]}" "$@" > "$RUN/server.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$(budget 240 $(( REFERENCE_S + 60 )))" && ready=1
    if (( ready )); then
        step "$label" ok $(( SECONDS - t )) "$(grep -m6 -i -E '^info:|block size|kv cache|deterministic' "$RUN/server.log" | tr '\n' ' ' | cut -c1-500)"
        return 0
    fi
    tail -n 30 "$RUN/server.log"
    step "$label" FAILED $(( SECONDS - t )) "not ready: $(grep -m1 -i 'error\|fail\|exception' "$RUN/server.log" | cut -c1-300)"
    return 1
}

# invariance LABEL: the batch-invariance rate at each concurrency of INV_LEVELS against the running server.
invariance() {
    local label=$1 c limit t status
    for c in ${INV_LEVELS//,/ }; do
        limit=$(budget $(( c >= 256 ? 90 : 45 )) $(( REFERENCE_S + 20 )))
        t=$SECONDS
        if (( limit < 5 )) || ! kill -0 "$SERVER_PID" 2>/dev/null; then
            step "invariance $label c=$c" skipped 0 "no time left or no server"
            continue
        fi
        timeout "$limit" python3 "$PY/invariance.py" "$URL" "$RUN/invariance-$label-$c.json" --concurrency "$c" \
            --tokens "$INV_TOKENS" --vocab "$VOCAB" --label "$label" 2>&1 | tee -a "$OUT/loadgen.txt"
        status=${PIPESTATUS[0]}
        if (( status == 0 )); then
            step "invariance $label c=$c" ok $(( SECONDS - t ))
        else
            step "invariance $label c=$c" FAILED $(( SECONDS - t )) "exit $status$( (( status == 124 )) && echo " (timed out after $limit s)")"
        fi
    done
}

# profile_kernels LABEL MODEL: kernels per decode step of MODEL from ONNX Runtime's profiler (batch 1, eager).
profile_kernels() {
    local label=$1 model=$2 t=$SECONDS limit trace
    limit=$(budget 90 $(( REFERENCE_S + 10 )))
    if (( limit < 10 )); then
        step "kernels $label" skipped 0 "no time left"
        return
    fi
    rm -f "$RUN/prof-$label"_*.json
    if INFERENCE_SERVER_ORT_PROFILE=$RUN/prof-$label timeout "$limit" "$APP/InferenceServer" bench latency --model "$model" \
        --device "$DEVICE" --batch-sizes 1 --input-len 32 --output-len 16 --cuda-graphs false > "$RUN/prof-$label.out" 2>&1; then
        trace=$(ls -t "$RUN/prof-$label"_*.json 2>/dev/null | head -n 1)
        if [[ -n $trace ]] && python3 "$PY/kernels.py" "$trace" "$RUN/kernels-$label.json" --label "$label"; then
            step "kernels $label" ok $(( SECONDS - t ))
        else
            step "kernels $label" FAILED $(( SECONDS - t )) "no trace or kernels.py failed ($(ls "$RUN" | grep -c prof-) files)"
        fi
    else
        step "kernels $label" FAILED $(( SECONDS - t )) "exit $?: $(tail -n 1 "$RUN/prof-$label.out" | cut -c1-200)"
    fi
    rm -f "$RUN/prof-$label"_*.json
}

finish() {
    stop_server
    echo "== report ($(elapsed) s in all)"
    python3 "$PY/report.py" "$RUN" --json "$OUT/results.json" > "$OUT/report.md" || echo "report.py failed"
    [[ -f $RUN/reference.json ]] && cp "$RUN/reference.json" "$OUT/reference.json"
    [[ -f $RUN/build.log ]] && cp "$RUN/build.log" "$OUT/build.log"
    echo
    cat "$OUT/report.md"
    # Let tee write the last lines of run.log before the call ends.
    exec >&- 2>&-
    wait "$TEE_PID" 2>/dev/null
}
trap finish EXIT

levels=${LEVELS//,/ }
ttft_lens=${TTFT_LENS//,/ }
server_args=(--model "$BUILT" --device "$DEVICE" --urls "$URL" --kv-cache-memory "$KV_CACHE" --max-num-seqs 256
    --max-num-batched-tokens "$MAX_NUM_BATCHED_TOKENS" --max-queued-requests 4096 --shutdown-timeout 5)
[[ -n $MAX_MODEL_LEN ]] && server_args+=(--max-model-len "$MAX_MODEL_LEN")
# shellcheck disable=SC2206 # SERVER_ARGS is split on purpose
server_args+=(${SERVER_ARGS:-})
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "dtype=$DTYPE"
    echo "tiny=$TINY"
    echo "shape=$SHAPE"
    echo "levels=$LEVELS"
    echo "ttft_lens=$TTFT_LENS"
    echo "input_len=$INPUT_LEN"
    echo "output_len=$OUTPUT_LEN"
    echo "vocab=$VOCAB"
    echo "prompts_rule=max($MIN_PROMPTS, $PROMPTS_PER_CONC x concurrency) requests per level"
    echo "server_command=InferenceServer ${server_args[*]}"
} > "$RUN/meta.txt"

# 0. The machine and what was staged.
echo "== llama benchmark: shape $SHAPE, dtype $DTYPE, levels $LEVELS, budget $BUDGET_S s"
timeout 20 nvidia-smi > "$RUN/nvidia-smi.txt" 2>&1 || echo "(nvidia-smi failed)" >> "$RUN/nvidia-smi.txt"
cat "$RUN/nvidia-smi.txt"
[[ -f $FILES/bench/gpu/out/stage-info.txt ]] && cp "$FILES/bench/gpu/out/stage-info.txt" "$RUN/stage-info.txt"
if [[ ! -x $APP/InferenceServer ]]; then
    step stage failed 0 "no $APP/InferenceServer: send the staged pieces first (bench/gpu/README.md)"
    exit 1
fi

# 1. The load generator: its 4 files beside the server's self-contained runtime.
t=$SECONDS
if timeout 20 "$LOADGEN" --help > /dev/null; then
    step loadgen ok $(( SECONDS - t )) "copied into $APP"
else
    step loadgen failed $(( SECONDS - t )) "no runnable $FILES/bench/gpu/out/loadgen (stage with bench/gpu/stage-bench.sh)"
    LOADGEN=
fi

# 2. The checkpoint (kept between calls).
t=$SECONDS
tiny_flag=(--shape "$SHAPE")
if [[ -f $CKPT/checkpoint.json && -f $CKPT/config.json ]]; then
    cp "$CKPT/checkpoint.json" "$RUN/checkpoint.json"
    step checkpoint reused 0 "$CKPT"
else
    rm -rf "$CKPT"
    if timeout "$(budget $([[ $SHAPE == 8b ]] && echo 300 || echo 180) $(( REFERENCE_S + 150 )))" python3 "$PY/make_checkpoint.py" "$CKPT" "${tiny_flag[@]}" > "$RUN/checkpoint.out"; then
        cat "$RUN/checkpoint.out"
        tail -n 1 "$RUN/checkpoint.out" > "$CKPT/checkpoint.json"
        cp "$CKPT/checkpoint.json" "$RUN/checkpoint.json"
        step checkpoint ok $(( SECONDS - t )) "$CKPT"
    else
        cat "$RUN/checkpoint.out"
        step checkpoint failed $(( SECONDS - t )) "make_checkpoint.py failed or timed out (run.log)"
        rm -rf "$CKPT"
        exit 1
    fi
fi

# 3. The build (kept between calls while the staged application is the same).
t=$SECONDS
stamp="$DTYPE $(cat "$APP"/InferenceServer*.dll 2>/dev/null | sha256sum | cut -c1-16)"
BUILD_OK=0
if [[ -n ${MODEL:-} ]]; then
    echo "(not built: MODEL=$MODEL)" > "$RUN/build.log"
    step build skipped 0 "MODEL=$MODEL"
    BUILD_OK=1
elif [[ -f $BUILT/.bench-stamp && "$(cat "$BUILT/.bench-stamp")" == "$stamp" ]]; then
    echo "(reused; built earlier by the same application)" > "$RUN/build.log"
    step build reused 0 "$BUILT"
    BUILD_OK=1
else
    rm -rf "$BUILT"
    limit=$(budget 240 $(( REFERENCE_S + 120 )))
    echo "$APP/InferenceServer build --checkpoint $CKPT --out $BUILT --dtype $DTYPE --device cuda" > "$RUN/build.log"
    if (( limit > 0 )) && timeout "$limit" "$APP/InferenceServer" build --checkpoint "$CKPT" --out "$BUILT" --dtype "$DTYPE" --device cuda >> "$RUN/build.log" 2>&1; then
        echo "$stamp" > "$BUILT/.bench-stamp"
        step build ok $(( SECONDS - t )) "$(tail -n 1 "$RUN/build.log")"
        BUILD_OK=1
    else
        status=$?
        tail -n 20 "$RUN/build.log"
        step build FAILED $(( SECONDS - t )) "exit $status$( (( status == 124 )) && echo ' (timed out)'): $(grep -m1 -i 'fail\|error' "$RUN/build.log" | cut -c1-300)"
    fi
fi

# 4. The server and the load.
if (( BUILD_OK )) && [[ -n $LOADGEN ]]; then
    # The bandwidth bound: weights bytes / the device's copy bandwidth.
    if (( BANDWIDTH )); then
        t=$SECONDS
        if timeout "$(budget 60 $(( REFERENCE_S + 60 )))" python3 "$PY/bandwidth.py" "$RUN/bandwidth.json" --weights "$BUILT/model.onnx.data"; then
            step bandwidth ok $(( SECONDS - t ))
        else
            step bandwidth failed $(( SECONDS - t ))
        fi
    fi

    ready=0
    start_server server-start && ready=1
    if (( ready )); then
        t=$SECONDS
        if timeout "$(budget 60 "$REFERENCE_S")" python3 "$PY/server_greedy.py" "$URL" "$RUN/server-greedy.json"; then
            step server-greedy ok $(( SECONDS - t ))
        else
            step server-greedy failed $(( SECONDS - t ))
        fi

        for c in $levels; do
            n=$(( c * PROMPTS_PER_CONC ))
            (( n < MIN_PROMPTS )) && n=$MIN_PROMPTS
            warm=$(( c < 2 ? 2 : c ))
            limit=$(budget $(( c >= 256 ? 150 : 90 )) $(( REFERENCE_S + 30 )))
            before=$(curl -s "$URL/metrics" | grep -E '^vllm:inter_token_latency_seconds_(sum|count)' | awk '{print $2}' | paste -sd' ')
            load_level "load c=$c" "$limit" 5 "$LOADGEN" "$c" "$n" "$warm" "$RUN/sweep-$c.json"
            # The engine's own inter-token time over this level (its timestamps, before HTTP): /metrics before and after.
            after=$(curl -s "$URL/metrics" | grep -E '^vllm:inter_token_latency_seconds_(sum|count)' | awk '{print $2}' | paste -sd' ')
            echo "engine inter-token latency over this level: $(echo "$before $after" | awk 'NF == 4 && $4 > $2 { printf "mean %.3f ms over %d tokens", ($3 - $1) / ($4 - $2) * 1000, $4 - $2 }')" | tee -a "$OUT/loadgen.txt"
            kill -0 "$SERVER_PID" 2>/dev/null || { step server died 0 "the server exited (server.log)"; break; }
        done

        seed=1
        for length in $ttft_lens; do
            limit=$(budget 60 "$REFERENCE_S")
            t=$SECONDS
            if (( limit < 5 )) || ! kill -0 "$SERVER_PID" 2>/dev/null; then
                step "ttft $length" skipped 0 "no time left or no server"
                continue
            fi
            # Its own seed: prompts of another length drawn from the same seed would share a cached prefix.
            echo "-- TTFT, $length-token prompts, concurrency 1" | tee -a "$OUT/loadgen.txt"
            timeout "$limit" "$LOADGEN" --url "$URL" --concurrency 1 --num-prompts 8 --warmup 2 \
                --input-len "$length" --output-len 1 --vocab "$VOCAB" --seed "$seed" --json "$RUN/ttft-$length.json" 2>&1 | tee -a "$OUT/loadgen.txt"
            status=${PIPESTATUS[0]}
            if (( status == 0 )); then
                step "ttft $length" ok $(( SECONDS - t ))
            else
                step "ttft $length" FAILED $(( SECONDS - t )) "exit $status"
            fi
            seed=$(( seed + 1 ))
        done

        (( INVARIANCE )) && invariance default
    fi
    t=$SECONDS
    stop_server
    step server-stop ok $(( SECONDS - t ))

    # The runner alone, in process (no HTTP, no scheduler): where the serving path's time goes.
    t=$SECONDS
    limit=$(budget 90 "$REFERENCE_S")
    if timeout "$limit" "$APP/InferenceServer" bench latency --model "$BUILT" --device "$DEVICE" --batch-sizes "$LEVELS" \
        --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" > "$RUN/bench-latency.md" 2>&1; then
        step "bench latency" ok $(( SECONDS - t ))
    else
        step "bench latency" FAILED $(( SECONDS - t )) "exit $?: $(tail -n 1 "$RUN/bench-latency.md" | cut -c1-200)"
    fi
    cp "$RUN/bench-latency.md" "$OUT/bench-latency.md" 2>/dev/null || true

    # --deterministic: the invariance rate again, and what it costs in tokens/s.
    if (( INVARIANCE && DETERMINISTIC )) && (( $(budget 200 "$REFERENCE_S") > 60 )); then
        cp "$RUN/server.log" "$RUN/server-default.log" 2>/dev/null
        if start_server server-start-deterministic --deterministic; then
            invariance deterministic
            for c in ${DET_LEVELS//,/ }; do
                n=$(( c * PROMPTS_PER_CONC ))
                (( n < MIN_PROMPTS )) && n=$MIN_PROMPTS
                limit=$(budget 60 $(( REFERENCE_S + 20 )))
                load_level "deterministic load c=$c" "$limit" 10 "$LOADGEN" "$c" "$n" "$(( c < 2 ? 2 : c ))" "$RUN/det-$c.json" "--deterministic, concurrency $c"
            done
        fi
        stop_server
        mv "$OUT/server.log" "$OUT/server-deterministic.log" 2>/dev/null
        [[ -f $RUN/server-default.log ]] && mv "$RUN/server-default.log" "$RUN/server.log" && stop_server
    elif (( INVARIANCE && DETERMINISTIC )); then
        step "deterministic" skipped 0 "no time left"
    fi

    # Kernels per decode step, fused (the build above) and unfused (`build --fuse off`, ADR 0007).
    if (( PROFILE )); then
        profile_kernels fused "$BUILT"
        UNFUSED=$BUILT-unfused
        t=$SECONDS
        if [[ -f $UNFUSED/.bench-stamp && "$(cat "$UNFUSED/.bench-stamp")" == "$stamp" ]]; then
            step "build unfused" reused 0 "$UNFUSED"
        elif limit=$(budget 240 $(( REFERENCE_S + 60 ))); (( limit > 30 )) && [[ -z ${MODEL:-} ]]; then
            rm -rf "$UNFUSED"
            if timeout "$limit" "$APP/InferenceServer" build --checkpoint "$CKPT" --out "$UNFUSED" --dtype "$DTYPE" --device cuda --fuse off > "$RUN/build-unfused.log" 2>&1; then
                echo "$stamp" > "$UNFUSED/.bench-stamp"
                step "build unfused" ok $(( SECONDS - t ))
            else
                step "build unfused" FAILED $(( SECONDS - t )) "$(tail -n 1 "$RUN/build-unfused.log" | cut -c1-200)"
            fi
        else
            step "build unfused" skipped 0 "no time left (or MODEL given)"
        fi
        [[ -f $UNFUSED/.bench-stamp ]] && profile_kernels unfused "$UNFUSED"
    fi
else
    step server skipped 0 "no build or no load generator"
    FAILED=1
fi

# 5. The reference, with whatever time is left (at least REFERENCE_S was kept for it).
if (( SKIP_REFERENCE )); then
    step reference skipped 0 "SKIP_REFERENCE=1"
else
    t=$SECONDS
    limit=$(budget 400 10)
    # Its own budget ends early enough for the last measurement (the largest batch: about 15 s) to finish in time.
    if timeout "$limit" python3 "$PY/hf_reference.py" "$CKPT" "$RUN/reference.json" --batches "$LEVELS" \
        --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --ttft-lens "$TTFT_LENS" --vocab "$VOCAB" --budget-s $(( limit > 60 ? limit - 40 : limit / 2 )); then
        step reference ok $(( SECONDS - t ))
    else
        status=$?
        step reference FAILED $(( SECONDS - t )) "exit $status$( (( status == 124 )) && echo " (timed out after $limit s; partial results kept)")"
    fi
fi

exit $FAILED
