#!/usr/bin/env bash
# Helpers that run-llama1b.sh, run-split.sh and the mla/ scripts source: a time budget with per-step timeouts, the step table of the
# report, the start of a run, an HTTP readiness probe, a wait for the server's readiness, a reused CUDA build, one load-generator level and a /metrics poller. They read START (the script's $SECONDS at its start), BUDGET_S and RUN (the
# run folder), and set FAILED=1 when a step fails.

# The server reads unprefixed environment variables as its flags (README "Command line": every flag is a configuration
# key), so these scripts' own knobs that share a flag's name would reach every server they start: DETERMINISTIC=0 stopped
# one ("--deterministic must be true or false, not '0'"), DTYPE=int4 would ask a built model for --dtype int4. They stay
# shell variables for the scripts and are no longer exported to the servers (the scripts pass the flags they mean).
export -n DETERMINISTIC DTYPE DEVICE MODEL PORT 2>/dev/null || true

elapsed() { echo $(( SECONDS - START )); }

# begin_run [FOLDER...]: RUN made afresh (OUT, WORK and each FOLDER made if missing); everything the script prints from
# here on goes to OUT/run.log too (TEE_PID is the tee, for the script's exit to wait for); FAILED and SERVER_PID reset;
# the staged load generator copied beside the application, LOADGEN naming it.
begin_run() {
    mkdir -p "$OUT" "$WORK" "$@"
    rm -rf "$RUN"
    mkdir -p "$RUN"
    exec > >(tee "$OUT/run.log") 2>&1
    TEE_PID=$!
    FAILED=0
    SERVER_PID=
    LOADGEN=$APP/InferenceServer.LoadGenerator
    cp "$FILES"/bench/gpu/out/loadgen/InferenceServer.LoadGenerator* "$APP/" 2>/dev/null || true
}

# build_cached LABEL CHECKPOINT OUT DTYPE WANT KEEP LOG: `InferenceServer build --device cuda` of CHECKPOINT into OUT in
# DTYPE, or OUT as an earlier call left it while the application is the same (a stamp of its assemblies in
# OUT/.bench-stamp); the timeout is `budget WANT KEEP`; the command and its output go to the end of LOG; one step line
# named LABEL. Returns 1 when the build failed.
build_cached() {
    local label=$1 checkpoint=$2 out=$3 dtype=$4 want=$5 keep=$6 log=$7 extra=${8:-} t=$SECONDS stamp status
    stamp="$dtype $extra $(cat "$APP"/InferenceServer*.dll 2>/dev/null | sha256sum | cut -c1-16)"
    if [[ -f $out/.bench-stamp && "$(cat "$out/.bench-stamp")" == "$stamp" ]]; then
        echo "(reused $out)" >> "$log"
        step "$label" reused 0 "$out"
        return 0
    fi
    rm -rf "$out"
    echo "$APP/InferenceServer build --checkpoint $checkpoint --out $out --dtype $dtype --device cuda $extra" >> "$log"
    # $extra: further build arguments, split on spaces (e.g. "--mla-attention latent").
    # shellcheck disable=SC2086
    if timeout "$(budget "$want" "$keep")" "$APP/InferenceServer" build --checkpoint "$checkpoint" --out "$out" --dtype "$dtype" --device cuda $extra >> "$log" 2>&1; then
        echo "$stamp" > "$out/.bench-stamp"
        step "$label" ok $(( SECONDS - t )) "$(tail -n 1 "$log" | cut -c1-300)"
        return 0
    else
        status=$?
    fi
    tail -n 20 "$log"
    step "$label" FAILED $(( SECONDS - t )) "exit $status: $(grep -m1 -i 'fail\|error' "$log" | cut -c1-300)"
    return 1
}

# The timeout for a step that wants $1 seconds (times TIME_SCALE, 1 unless a script sets it) while $2 seconds stay
# kept for what comes after; at least 1 (never 0, which would mean no timeout at all to timeout(1)).
budget() {
    local want=$(( $1 * ${TIME_SCALE:-1} )) keep=$2 left
    left=$(( BUDGET_S - $(elapsed) - keep ))
    (( left < want )) && want=$left
    (( want < 1 )) && want=1
    echo "$want"
}

# step NAME STATUS SECONDS DETAIL: one row of the report's step table.
step() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >> "$RUN/steps.tsv"
    echo "== $1: $2 ($3 s) ${4:-}"
    [[ $2 == ok || $2 == reused || $2 == skipped ]] || FAILED=1
}

# GET $1 answers 200.
http_ok() {
    if command -v curl > /dev/null; then
        [[ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null)" == 200 ]]
    else
        python3 -c 'import sys, urllib.request; sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)' "$1" 2>/dev/null
    fi
}

# wait_ready SECONDS: waits up to SECONDS for the server SERVER_PID names to answer URL/health/ready; false when it
# exits or the time runs out first.
wait_ready() {
    local deadline=$(( SECONDS + $1 ))
    while (( SECONDS < deadline )) && kill -0 "$SERVER_PID" 2>/dev/null; do
        http_ok "$URL/health/ready" && return 0
        sleep 1
    done
    return 1
}

# Stops the server SERVER_PID names (SIGTERM, up to $1 half-seconds for it to drain, then SIGKILL) and clears it.
end_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 "$1"); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    SERVER_PID=
}

# excerpt_log SOURCE DEST HEAD TAIL: the first HEAD and last TAIL lines of a server log, for $OUT.
excerpt_log() {
    [[ -f $1 ]] || return 0
    { head -n "$3" "$1"; echo "... ($(wc -l < "$1") lines in all; the last $4 follow)"; tail -n "$4" "$1"; } > "$2"
}

# load_level STEP LIMIT MIN LOADGEN C N WARM JSON [LABEL]: one load-generator level against LOAD_URL, else URL (C in
# flight, N requests after WARM warm-up ones, INPUT_LEN/OUTPUT_LEN tokens, ids below VOCAB, seed 0) under timeout LIMIT,
# its output appended to $OUT/loadgen.txt and its results to JSON; the step is skipped when LIMIT < MIN. LOAD_URL may
# name several servers (comma-separated: replicas, sent requests in turn). Returns the load generator's status.
load_level() {
    local name=$1 limit=$2 min=$3 loadgen=$4 c=$5 n=$6 warm=$7 json=$8 label=${9:-concurrency $5} t=$SECONDS status
    if (( limit < min )); then
        step "$name" skipped 0 "no time left"
        return 0
    fi
    echo "-- $label: $n requests, $warm warm-up, timeout $limit s" | tee -a "$OUT/loadgen.txt"
    timeout "$limit" "$loadgen" --url "${LOAD_URL:-$URL}" --concurrency "$c" --num-prompts "$n" --warmup "$warm" \
        --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --vocab "$VOCAB" --seed 0 --json "$json" 2>&1 | tee -a "$OUT/loadgen.txt"
    status=${PIPESTATUS[0]}
    if (( status == 0 )); then
        step "$name" ok $(( SECONDS - t ))
    else
        step "$name" FAILED $(( SECONDS - t )) "exit $status$( (( status == 124 )) && echo " (timed out after $limit s)")"
    fi
    return "$status"
}

# poll_metrics FILE [URL]: every 50 ms until killed, a line "seconds running waiting preemptions" from URL/metrics
# (default $URL; vllm:num_requests_running, _waiting, vllm:num_preemptions_total): run it in the background around a
# load level.
poll_metrics() {
    local file=$1 url=${2:-$URL} t0=$EPOCHREALTIME body
    : > "$file"
    while :; do
        body=$(curl -s -m 1 "$url/metrics" 2>/dev/null) || body=
        awk -v now="$EPOCHREALTIME" -v t0="$t0" '/^vllm:num_requests_running/ { r = $NF } /^vllm:num_requests_waiting/ { w = $NF }
            /^vllm:num_preemptions_total/ { p = $NF }
            END { if (r != "") printf "%.3f\t%s\t%s\t%s\n", now - t0, r, w, (p == "" ? 0 : p) }' <<< "$body" >> "$file"
        sleep 0.05
    done
}

# step_metrics URL FILE: the server's model-step histogram (inference_step_seconds, by kind) into FILE.
step_metrics() {
    curl -s -m 5 "$1/metrics" | grep '^inference_step_seconds' > "$2"
}

# step_summary LABEL BEFORE AFTER: the model steps between two step_metrics snapshots, by kind: how many, their mean,
# and how many took over 100 ms (a few long steps hold back every first token behind them).
step_summary() {
    # (FILENAME, not FNR == NR: before the first step the "before" file is empty.)
    awk -v label="$1" 'FILENAME == ARGV[1] { before[$1] = $2; next } { delta[$1] = $2 - before[$1] }
        END { for (k = 0; k < 2; k++) { kind = k ? "prompt" : "decode"; n = s = fast = 0
                for (key in delta) { if (index(key, "kind=\"" kind "\"") == 0) continue
                    if (key ~ /_count/) n = delta[key]; else if (key ~ /_sum/) s = delta[key]; else if (key ~ /le="0.1"/) fast = delta[key] }
                line = line sprintf("%s%s %d (mean %.2f ms, over 100 ms: %d)", k ? ", " : "", kind, n, n ? 1000 * s / n : 0, n - fast) }
              printf "server steps %s: %s\n", label, line }' "$2" "$3"
}
