#!/usr/bin/env bash
# Attention offloading's first measurement (issue 16), run ON the GPU machine once bench/gpu/stage-bench.sh's pieces are
# unpacked (bench/gpu/README.md has the sequence of device calls):
#
#   bash .gpu/unpack.sh && source /tmp/gpu/env && bash bench/gpu/run-split.sh
#
# The Llama-3.2-1B-shaped random checkpoint (llama1b/make_checkpoint.py, kept in /tmp/llama1b and shared with
# run-llama1b.sh) is built once in fp16 with its split form (`build --dtype fp16 --device cuda --split`), then served by
# three servers, one after another, on the same build:
#   fused  --device cuda                                  (the paged graph, ADR 0003)
#   local  --device cuda:0 --attention-device cuda:0      (split segments, PagedAttention beside them, ADR 0005; the
#                                                          default --split-one-stream auto: one stream for the step)
#   localsync  local with --split-one-stream false        (a synchronization after every run; not in the default MODES)
#   localeager local with --cuda-graphs false              (no captured decode steps, ADR 0011: local's greedy decode
#                                                          steps run as CUDA graphs by default; not in the default MODES)
#   cpu    --device cuda:0 --attention-device cpu --attention-overlap off  (split segments, attention and KV on the
#                                                          host's cores, taking turns with the segments)
#   cpuov  as cpu with --attention-overlap on             (two micro-batches per step, ADR 0010; not in the default MODES)
#   localstream, cpustream  local / cpuov with --split-one-stream (one CUDA stream, one synchronization per step; not
#                                                          in the default MODES)
#   mixed  --device cuda:0 --attention-device cuda:0,cpu  (half the blocks on the GPU with the log-sum-exp graph, half on
#                                                          the host, merged; not in the default MODES)
#   cputier  as cpu, with --host-kv-cache-memory HOST_TIER (16g)                   (not in the default MODES)
#   remote  --device cuda:0 --attention-device cuda:1     (two GPUs: compute on the first, attention and every KV block on
#                                                          the second, q, k, v and outputs by peer copies; not in the
#                                                          default MODES)
#   replicas  two fused servers, --device cuda:0 on PORT and --device cuda:1 on PORT+1, the load generator sending
#             requests to them in turn (round robin, as a load balancer would; not in the default MODES)
# Issue 17's two-GPU run (on an nvidia-h100-x2 / nvidia-h200-x2 machine; bench/gpu/README.md has the command): fused,
# replicas and remote at 32k-token prompts with KV_CACHE a fraction of each GPU's free memory; the report's capacity table
# gives each server's KV pool (vllm:cache_config_info: blocks x block size, summed over the replicas), the sequences of
# INPUT_LEN + OUTPUT_LEN tokens that fit it, and the largest running count measured per level (vllm:num_requests_running
# every 50 ms; for the replicas, each one's largest, summed), against the goals (remote >= 2x fused's sequences and
# >= 1.3x the replicas', at >= 1.0x the replicas' output tok/s).
#   cpupre, cputierpre  cpuov / cputier with --prefill-attention compute (prompts' first chunks attend on the GPU,
#                                                          the host only stores their KV; ADR 0005; not in the default MODES;
#                                                          the server's default, auto, does this on a GPU: the other cpu
#                                                          modes pass --prefill-attention host to stay comparable with
#                                                          the runs before it)
# SHAPE=8b (make_checkpoint.py --shape 8b, Llama-3.1-8B's shape) with INPUT_LEN=8192 OUTPUT_LEN=256, rising LEVELS,
# KV_CACHE sized for the GPU and SERVER_ARGS="--max-model-len 16384" is issue 17's KV-bound run: after every level the
# server's preemption count and KV use go to metrics-<mode>-<c>.txt and into the report (where fused starts to preempt),
# with the split step counters (inference_split_*): the report's overlap columns are each level's step time over the
# busier of the step thread's dense time and the host attention time (ADR 0010's efficiency, goal <= 1.10).
# Each gets the greedy tokens of llama1b/prompts.py's two fixed prompts and the load generator at LEVELS (1,64,256)
# with INPUT_LEN-token prompts and OUTPUT_LEN new tokens (ignore_eos). To fit 540 s the levels send fewer requests
# than run-llama1b.sh: max(MIN_PROMPTS, PROMPTS_PER_CONC x concurrency) = 8, 64 and 256 requests by default, after
# min(concurrency, 16) warm-up requests. split_report.py writes report.md: per server and level the output tok/s,
# TTFT and TPOT p50/p99 and the ratio to fused, and the greedy tokens of each split server against fused.
#
# Everything goes to $OUT: report.md, results.json, run.log, loadgen.txt, server-<mode>.log, build.log. Every step has
# a timeout inside BUDGET_S (530 s); a mode that cannot start is reported and the next one runs.
#
# Settings (environment): LEVELS (1,64,256), MODES (fused,local,cpu), INPUT_LEN (128), OUTPUT_LEN (128),
# PROMPTS_PER_CONC (1), MIN_PROMPTS (8), KV_CACHE (8g: the same for every mode; for cpu it is host memory),
# HOST_KV_CACHE (KV_CACHE: the cpu modes' --kv-cache-memory, host memory, for the KV-bound run where the host holds more),
# LEVEL_S (60, 90 from 256: each level's time limit), WARMUP_MAX (16: warm-up requests are min(concurrency, this), at least 2),
# MAX_NUM_BATCHED_TOKENS (8192), PORT (18610), BUDGET_S (530), SERVER_ARGS, APP (/tmp/gpu/app), FILES (/tmp/gpu/files),
# WORK (/tmp/llama1b), SHAPE (1b; 8b, tiny), TINY (0; 1 = SHAPE=tiny), HOST_TIER (16g), VOCAB (128000), TEACHER (1: the teacher-forced logprob check against transformers fp32,
# hf_teacher_forced.py / teacher_forced.py / tolerance_report.py, appended to report.md), GPU0 (cuda:0) and GPU1 (cuda:1):
# the devices the modes name, MODEL_DIR (none: a model folder with the split form to serve instead of the checkpoint
# and build of steps 2-3; with GPU0=cpu GPU1=cpu and a CPU split build this checks the script on a machine without GPUs).
set -uo pipefail

START=$SECONDS
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APP=${APP:-/tmp/gpu/app}
FILES=${FILES:-/tmp/gpu/files}
WORK=${WORK:-/tmp/llama1b}
OUT=${OUT:-$WORK/split-out}
TINY=${TINY:-0}
TEACHER=${TEACHER:-1}
LEVELS=${LEVELS:-1,64,256}
MODES=${MODES:-fused,local,cpu}
INPUT_LEN=${INPUT_LEN:-128}
OUTPUT_LEN=${OUTPUT_LEN:-128}
PROMPTS_PER_CONC=${PROMPTS_PER_CONC:-1}
MIN_PROMPTS=${MIN_PROMPTS:-8}
KV_CACHE=${KV_CACHE:-8g}
HOST_KV_CACHE=${HOST_KV_CACHE:-$KV_CACHE}
LEVEL_S=${LEVEL_S:-}
WARMUP_MAX=${WARMUP_MAX:-16}
MAX_NUM_BATCHED_TOKENS=${MAX_NUM_BATCHED_TOKENS:-8192}
PORT=${PORT:-18610}
BUDGET_S=${BUDGET_S:-530}
VOCAB=${VOCAB:-128000}
URL=http://127.0.0.1:$PORT
URL2=http://127.0.0.1:$(( PORT + 1 ))
GPU0=${GPU0:-cuda:0}
GPU1=${GPU1:-cuda:1}
MODEL_DIR=${MODEL_DIR:-}
SERVER2_PID=
export PYTHONUNBUFFERED=1

PY=$HERE/llama1b
[[ -f $PY/make_checkpoint.py ]] || PY=$FILES/bench/gpu/llama1b
REPORT=$HERE/split_report.py
[[ -f $REPORT ]] || REPORT=$FILES/bench/gpu/split_report.py
SHAPE=${SHAPE:-1b}
(( TINY )) && SHAPE=tiny
case $SHAPE in
    tiny) CKPT=$WORK/checkpoint-tiny ;;
    8b) CKPT=$WORK/checkpoint-8b ;;
    *) SHAPE=1b; CKPT=$WORK/checkpoint ;;
esac
BUILT=${MODEL_DIR:-$CKPT-fp16-cuda-split}
RUN=$WORK/split-run
MODE=

# elapsed, budget, step, http_ok (beside this script in the checkout, else where the staged extra paths were unpacked).
# shellcheck source=lib.sh
source "$HERE/lib.sh" 2>/dev/null || source "$FILES/bench/gpu/lib.sh"
begin_run

stop_server() {
    if [[ -n $SERVER2_PID ]]; then
        # The second replica: end_server stops the server SERVER_PID names.
        local first=$SERVER_PID
        SERVER_PID=$SERVER2_PID
        end_server 20
        SERVER_PID=$first
        SERVER2_PID=
        [[ -n $MODE ]] && excerpt_log "$RUN/server-$MODE-2.log" "$OUT/server-$MODE-2.log" 60 100
    fi
    end_server 20
    if [[ -n $MODE ]]; then
        excerpt_log "$RUN/server-$MODE.log" "$OUT/server-$MODE.log" 60 100
    fi
}

finish() {
    stop_server
    echo "== report ($(elapsed) s in all)"
    python3 "$REPORT" "$RUN" --json "$OUT/results.json" > "$OUT/report.md" || echo "split_report.py failed"
    if [[ -f $RUN/hf-teacher.json ]]; then
        teachers=()
        for m in ${MODES//,/ }; do teachers+=("$m=$RUN/teacher-$m.json"); done
        { echo; echo "## Teacher-forced logprobs against transformers fp32 (tolerance_report.py)"; echo;
          python3 "$PY/tolerance_report.py" "$RUN/hf-teacher.json" "${teachers[@]}"; } >> "$OUT/report.md" || echo "tolerance_report.py failed"
        cp "$RUN"/hf-teacher.json "$RUN"/teacher-*.json "$OUT/" 2>/dev/null
    fi
    [[ -f $RUN/build.log ]] && cp "$RUN/build.log" "$OUT/build.log"
    echo
    cat "$OUT/report.md"
    exec >&- 2>&-
    wait "$TEE_PID" 2>/dev/null
}
trap finish EXIT

{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "shape=$SHAPE"
    echo "levels=$LEVELS"
    echo "modes=$MODES"
    echo "input_len=$INPUT_LEN"
    echo "output_len=$OUTPUT_LEN"
    echo "kv_cache=$KV_CACHE"
    echo "host_kv_cache=$HOST_KV_CACHE (cpu modes)"
    echo "prompts_rule=max($MIN_PROMPTS, $PROMPTS_PER_CONC x concurrency) requests per level, min(concurrency, 16) warm-up"
} > "$RUN/meta.txt"

echo "== split benchmark: modes $MODES, levels $LEVELS, budget $BUDGET_S s"
timeout 20 nvidia-smi > "$RUN/nvidia-smi.txt" 2>&1 || echo "(nvidia-smi failed)" >> "$RUN/nvidia-smi.txt"
head -n 15 "$RUN/nvidia-smi.txt"
{ nproc; grep -m1 'model name' /proc/cpuinfo; } > "$RUN/host.txt" 2>/dev/null
[[ -f $FILES/bench/gpu/out/stage-info.txt ]] && cp "$FILES/bench/gpu/out/stage-info.txt" "$RUN/stage-info.txt"
if [[ ! -x $APP/InferenceServer ]]; then
    step stage failed 0 "no $APP/InferenceServer: send the staged pieces first (bench/gpu/README.md)"
    exit 1
fi

# 1. The load generator beside the server's runtime.
t=$SECONDS
if timeout 20 "$LOADGEN" --help > /dev/null; then
    step loadgen ok $(( SECONDS - t ))
else
    step loadgen failed $(( SECONDS - t )) "no runnable load generator (stage with bench/gpu/stage-bench.sh)"
    exit 1
fi

# 2. The checkpoint (shared with run-llama1b.sh, kept between calls).
t=$SECONDS
tiny_flag=(--shape "$SHAPE")
if [[ -n $MODEL_DIR ]]; then
    step checkpoint skipped 0 "MODEL_DIR=$MODEL_DIR"
elif [[ -f $CKPT/checkpoint.json && -f $CKPT/config.json ]]; then
    step checkpoint reused 0 "$CKPT"
else
    rm -rf "$CKPT"
    if timeout "$(budget $([[ $SHAPE == 8b ]] && echo 300 || echo 150) $(( BUDGET_S * 68 / 100 )))" python3 "$PY/make_checkpoint.py" "$CKPT" "${tiny_flag[@]}" > "$RUN/checkpoint.out"; then
        tail -n 1 "$RUN/checkpoint.out" > "$CKPT/checkpoint.json"
        step checkpoint ok $(( SECONDS - t )) "$CKPT"
    else
        cat "$RUN/checkpoint.out"
        step checkpoint failed $(( SECONDS - t )) "make_checkpoint.py failed or timed out"
        exit 1
    fi
fi

# 3. One fp16 build with the split form beside the fused paged graph (kept while the staged application is the same).
t=$SECONDS
stamp="split $(cat "$APP"/InferenceServer*.dll 2>/dev/null | sha256sum | cut -c1-16)"
if [[ -n $MODEL_DIR ]]; then
    step build skipped 0 "serving $MODEL_DIR as it is"
elif [[ -f $BUILT/.bench-stamp && "$(cat "$BUILT/.bench-stamp")" == "$stamp" ]]; then
    echo "(reused; built earlier by the same application)" > "$RUN/build.log"
    step build reused 0 "$BUILT"
else
    rm -rf "$BUILT"
    echo "$APP/InferenceServer build --checkpoint $CKPT --out $BUILT --dtype fp16 --device cuda --split" > "$RUN/build.log"
    if timeout "$(budget $([[ $SHAPE == 8b ]] && echo 420 || echo 200) $(( BUDGET_S * 57 / 100 )))" "$APP/InferenceServer" build --checkpoint "$CKPT" --out "$BUILT" --dtype fp16 --device cuda --split >> "$RUN/build.log" 2>&1; then
        echo "$stamp" > "$BUILT/.bench-stamp"
        step build ok $(( SECONDS - t )) "$(tail -n 1 "$RUN/build.log" | cut -c1-200)"
    else
        status=$?
        tail -n 20 "$RUN/build.log"
        step build FAILED $(( SECONDS - t )) "exit $status: $(grep -m1 -i 'fail\|error' "$RUN/build.log" | cut -c1-300)"
        exit 1
    fi
fi

# 3b. The fp32 teacher-forced reference of the tolerance check (transformers on this GPU; kept with the checkpoint).
if (( TEACHER )); then
    t=$SECONDS
    if [[ -f $CKPT/hf-teacher.json ]]; then
        step "fp32 reference" reused 0
    elif timeout "$(budget 120 $(( BUDGET_S * 50 / 100 )))" python3 "$PY/hf_teacher_forced.py" "$CKPT" "$CKPT/hf-teacher.json" > "$RUN/hf-teacher.out" 2>&1; then
        step "fp32 reference" ok $(( SECONDS - t ))
    else
        tail -n 5 "$RUN/hf-teacher.out"
        step "fp32 reference" failed $(( SECONDS - t ))
    fi
    [[ -f $CKPT/hf-teacher.json ]] && cp "$CKPT/hf-teacher.json" "$RUN/hf-teacher.json"
fi

# 4. The three servers, one after another; each keeps an even share of what is left for the ones after it.
IFS=, read -r -a modes <<< "$MODES"
levels=${LEVELS//,/ }
remaining=${#modes[@]}
for MODE in "${modes[@]}"; do
    case $MODE in
        fused) mode_args=(--device "$GPU0") ;;
        local) mode_args=(--device "$GPU0" --attention-device "$GPU0") ;;
        localsync) mode_args=(--device "$GPU0" --attention-device "$GPU0" --split-one-stream false) ;;
        localeager) mode_args=(--device "$GPU0" --attention-device "$GPU0" --cuda-graphs false) ;;
        cpu) mode_args=(--device "$GPU0" --attention-device cpu --attention-overlap off --prefill-attention host) ;;
        cpuov) mode_args=(--device "$GPU0" --attention-device cpu --attention-overlap on --prefill-attention host) ;;
        localstream) mode_args=(--device "$GPU0" --attention-device "$GPU0" --split-one-stream) ;;
        cpustream) mode_args=(--device "$GPU0" --attention-device cpu --attention-overlap on --split-one-stream --prefill-attention host) ;;
        mixed) mode_args=(--device "$GPU0" --attention-device "$GPU0" --attention-device cpu) ;;
        cputier) mode_args=(--device "$GPU0" --attention-device cpu --host-kv-cache-memory "${HOST_TIER:-16g}" --prefill-attention host) ;;
        cpupre) mode_args=(--device "$GPU0" --attention-device cpu --attention-overlap on --prefill-attention compute) ;;
        cputierpre) mode_args=(--device "$GPU0" --attention-device cpu --host-kv-cache-memory "${HOST_TIER:-16g}" --prefill-attention compute) ;;
        remote) mode_args=(--device "$GPU0" --attention-device "$GPU1") ;;
        replicas) mode_args=(--device "$GPU0") ;;
        *) step "$MODE" skipped 0 "unknown mode"; remaining=$(( remaining - 1 )); continue ;;
    esac
    share=$(( (BUDGET_S - $(elapsed)) / remaining ))
    keep=$(( BUDGET_S - $(elapsed) - share ))
    remaining=$(( remaining - 1 ))
    kv=$KV_CACHE
    [[ $MODE == cpu* ]] && kv=$HOST_KV_CACHE
    server_args=(--model "$BUILT" "${mode_args[@]}" --urls "$URL" --kv-cache-memory "$kv" --max-num-seqs 256
        --max-num-batched-tokens "$MAX_NUM_BATCHED_TOKENS" --max-queued-requests 4096 --shutdown-timeout 5)
    # shellcheck disable=SC2206 # SERVER_ARGS is split on purpose
    server_args+=(${SERVER_ARGS:-})
    echo "server_command_$MODE=InferenceServer ${server_args[*]}" >> "$RUN/meta.txt"
    t=$SECONDS
    "$APP/InferenceServer" "${server_args[@]}" > "$RUN/server-$MODE.log" 2>&1 &
    SERVER_PID=$!
    ready=0
    wait_ready "$(budget 120 $(( keep + 20 )))" && ready=1
    LOAD_URL=$URL
    if (( ready )) && [[ $MODE == replicas ]]; then
        # The second replica, on the second GPU, with the same flags.
        second_args=("${server_args[@]}")
        for i in "${!second_args[@]}"; do
            [[ ${second_args[$i]} == "$URL" ]] && second_args[i]=$URL2
            [[ ${second_args[$i]} == "$GPU0" && $i -gt 0 && ${second_args[$((i - 1))]} == --device ]] && second_args[i]=$GPU1
        done
        echo "server_command_${MODE}_2=InferenceServer ${second_args[*]}" >> "$RUN/meta.txt"
        "$APP/InferenceServer" "${second_args[@]}" > "$RUN/server-$MODE-2.log" 2>&1 &
        SERVER2_PID=$!
        first=$SERVER_PID
        SERVER_PID=$SERVER2_PID
        ready=0
        URL_SAVED=$URL
        URL=$URL2
        wait_ready "$(budget 120 $(( keep + 20 )))" && ready=1
        URL=$URL_SAVED
        SERVER_PID=$first
        LOAD_URL="$URL,$URL2"
        (( ready )) || tail -n 20 "$RUN/server-$MODE-2.log"
    fi
    if (( ready )); then
        # Each server's KV pool (the capacity table of the report).
        for u in ${LOAD_URL//,/ }; do
            curl -s -m 5 "$u/metrics" | grep '^vllm:cache_config_info' >> "$RUN/capacity-$MODE.txt" 2>/dev/null
        done
        step "$MODE start" ok $(( SECONDS - t )) "$(grep -i -E 'offload|local split|KV pool|block size|runs on' "$RUN/server-$MODE.log" | tr '\n' ' ' | cut -c1-400)"
    else
        tail -n 20 "$RUN/server-$MODE.log"
        step "$MODE start" FAILED $(( SECONDS - t )) "not ready: $(grep -m1 -i 'error\|fail\|exception\|exit' "$RUN/server-$MODE.log" | cut -c1-300)"
        stop_server
        continue
    fi

    t=$SECONDS
    if timeout "$(budget 40 "$keep")" python3 "$PY/server_greedy.py" "$URL" "$RUN/greedy-$MODE.json"; then
        step "$MODE greedy" ok $(( SECONDS - t ))
    else
        step "$MODE greedy" failed $(( SECONDS - t ))
    fi

    if [[ -f $RUN/hf-teacher.json ]]; then
        t=$SECONDS
        if timeout "$(budget 60 "$keep")" python3 "$PY/teacher_forced.py" "$URL" "$RUN/hf-teacher.json" "$RUN/teacher-$MODE.json"; then
            step "$MODE teacher-forced" ok $(( SECONDS - t ))
        else
            step "$MODE teacher-forced" failed $(( SECONDS - t ))
        fi
    fi

    for c in $levels; do
        n=$(( c * PROMPTS_PER_CONC ))
        (( n < MIN_PROMPTS )) && n=$MIN_PROMPTS
        warm=$(( c < WARMUP_MAX ? c : WARMUP_MAX ))
        (( warm < 2 )) && warm=2
        limit=$(budget "${LEVEL_S:-$(( c >= 256 ? 90 : 60 ))}" "$keep")
        # The running count every 50 ms during the level, per server (the capacity table's measured column).
        pollers=()
        r=0
        for u in ${LOAD_URL//,/ }; do
            r=$(( r + 1 ))
            poll_metrics "$RUN/running-$MODE-$c-$r.tsv" "$u" &
            pollers+=($!)
        done
        load_level "$MODE c=$c" "$limit" 5 "$APP/InferenceServer.LoadGenerator" "$c" "$n" "$warm" "$RUN/load-$MODE-$c.json" "$MODE, concurrency $c"
        kill "${pollers[@]}" 2>/dev/null
        wait "${pollers[@]}" 2>/dev/null
        # Preemptions and the KV in use so far: the KV-bound runs read where each server starts preempting.
        : > "$RUN/metrics-$MODE-$c.txt"
        for u in ${LOAD_URL//,/ }; do
            curl -s -m 5 "$u/metrics" | grep -E '^vllm:num_preemptions|^vllm:kv_cache_usage_perc|^inference_kv_blocks_used|^inference_split' >> "$RUN/metrics-$MODE-$c.txt" 2>/dev/null
        done
        kill -0 "$SERVER_PID" 2>/dev/null || { step "$MODE server" died 0 "the server exited (server-$MODE.log)"; break; }
        [[ -z $SERVER2_PID ]] || kill -0 "$SERVER2_PID" 2>/dev/null || { step "$MODE server 2" died 0 "the second replica exited (server-$MODE-2.log)"; break; }
    done
    curl -s -m 5 "$URL/metrics" | grep -E '^inference_attention|^vllm:num_preemptions' > "$RUN/metrics-$MODE.txt" 2>/dev/null
    t=$SECONDS
    stop_server
    step "$MODE stop" ok $(( SECONDS - t ))
done
MODE=

exit $FAILED
