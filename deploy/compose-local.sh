#!/usr/bin/env bash
# The docker-compose.yml topology without a Docker engine: two server replicas (the Dockerfile's published output and
# entrypoint, with JSON logs) and a real nginx (the Debian package) with deploy/nginx/nginx.conf, all on loopback; only
# the addresses in nginx.conf are substituted (the lines marked "compose-local").
#
#   deploy/compose-local.sh up     start, print the addresses, run until Ctrl-C
#   deploy/compose-local.sh test   start, then check with real processes and exit non-zero on any failure:
#     1. requests through nginx succeed and both replicas serve them, over HTTP and over gRPC;
#     2. SIGTERM on a replica under load: it turns not ready and nginx routes new requests only to the other replica
#        (503s are retried there), its in-flight stream finishes, and it exits 0;
#     3. SIGKILL on a replica under load: every request that had not started streaming still succeeds (nginx retried
#        it on the other replica); only streams already under way may end early.
#     4. A burst of 429s (full queues) leaves both replicas in rotation; a 3 MB body passes nginx to the server; every
#        response carries exactly one X-Request-Id, the caller's.
#
# The replicas run with --max-queued-requests 48 so that one request of 4 prompts x n=16 (64 sequences) is a 429 on
# either replica, every time, while the other checks' at most 24 concurrent requests always fit.
# Environment: APP (a published folder to reuse instead of publishing), PORT_BASE (default 18180: nginx HTTP on
# PORT_BASE, gRPC on PORT_BASE+10, replica i on PORT_BASE+i and PORT_BASE+10+i), KEEP_RUN=1 keeps the run folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-up}
base=${PORT_BASE:-18180}
run=$(mktemp -d /tmp/compose-local.XXXXXX)
chmod 755 "$run"
declare -a pids=()
nginx_pid=""

log() { printf '[compose-local] %s\n' "$*" >&2; }

cleanup() {
  for pid in "${pids[@]}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ "${KEEP_RUN:-0}" = 1 ]; then log "run folder kept: $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT

command -v nginx >/dev/null || { echo "error: nginx is not installed (apt-get install -y nginx)" >&2; exit 1; }

# --- the published app, laid out as the image lays it out (/app with models/tiny-pycoder) ---
app=${APP:-}
if [ -z "$app" ]; then
  app="$run/app"
  log "publishing (as the Dockerfile does)"
  dotnet publish "$root/src/InferenceServer/InferenceServer.csproj" -c Release -o "$app" >"$run/publish.log" 2>&1 || { cat "$run/publish.log"; exit 1; }
  mkdir -p "$app/models" && cp -r "$root/models/tiny-pycoder" "$app/models/"
fi

http_port() { echo $((base + $1)); }
grpc_port() { echo $((base + 10 + $1)); }

# Starts replica $1 (1 or 2) with the image's entrypoint and arguments, from / so only the published folder is found.
start_replica() {
  local i=$1
  (cd / && exec dotnet "$app/InferenceServer.dll" --log-format json --shutdown-timeout 30 --max-queued-requests 48 \
      --urls "http://127.0.0.1:$(http_port "$i")" --grpc-port "$(grpc_port "$i")") \
    >>"$run/replica$i.log" 2>&1 &
  pids[$i]=$!
}

wait_ready() {
  local url=$1
  for _ in $(seq 1 300); do
    curl -sf "$url" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "not ready: $url"; return 1
}

# --- nginx with the same config, addresses substituted ---
# "http2 on;" needs nginx 1.25.1 (the compose image is 1.27); an older local nginx (Debian 12 has 1.22) gets the
# deprecated "listen ... http2" form of the same listener instead.
nginx_version=$(nginx -v 2>&1 | sed -nE 's|.*nginx/([0-9.]+).*|\1|p')
if [ "$(printf '%s\n1.25.1\n' "$nginx_version" | sort -V | head -n1)" = 1.25.1 ]; then grpc_listen="listen 127.0.0.1:$((base + 10));"; h2=""
else grpc_listen="listen 127.0.0.1:$((base + 10)) http2;"; h2="# (http2 on: nginx $nginx_version has only the listen parameter)"; fi
sed -e "s|inference-1:8080|127.0.0.1:$(http_port 1)|; s|inference-2:8080|127.0.0.1:$(http_port 2)|" \
    -e "s|inference-1:8081|127.0.0.1:$(grpc_port 1)|; s|inference-2:8081|127.0.0.1:$(grpc_port 2)|" \
    -e "s|listen 8080;|listen 127.0.0.1:$base;|; s|listen 8081;|$grpc_listen|" \
    -e "${h2:+s|http2 on;|$h2|}" \
    -e "s|access_log /dev/stdout inference;|access_log $run/access.log inference;|" \
    -e "s|^http {|http {\n  client_body_temp_path $run/tmp/body; proxy_temp_path $run/tmp/proxy; fastcgi_temp_path $run/tmp/fastcgi; uwsgi_temp_path $run/tmp/uwsgi; scgi_temp_path $run/tmp/scgi;|" \
    "$root/deploy/nginx/nginx.conf" >"$run/nginx.conf"
mkdir -p "$run/tmp" && chmod 777 "$run/tmp"

start_replica 1
start_replica 2
wait_ready "http://127.0.0.1:$(http_port 1)/health/ready"
wait_ready "http://127.0.0.1:$(http_port 2)/health/ready"
nginx -c "$run/nginx.conf" -p "$run" -g "daemon off; pid $run/nginx.pid; error_log $run/error.log warn;" &
nginx_pid=$!
lb="http://127.0.0.1:$base"
wait_ready "$lb/nginx-health"
log "up: nginx $lb (gRPC 127.0.0.1:$((base + 10))), replicas $(http_port 1) $(http_port 2)"

if [ "$mode" = up ]; then
  log "Ctrl-C to stop"
  wait "$nginx_pid"
  exit 0
fi
[ "$mode" = test ] || { echo "usage: $0 [up|test]" >&2; exit 2; }

failures=0
fail() { log "FAIL: $*"; failures=$((failures + 1)); }
pass() { log "ok: $*"; }

# One completion through nginx; writes headers and body under $run/r/$1.
post() {
  local name=$1 body=$2
  curl -s -N -D "$run/r/$name.h" -o "$run/r/$name.b" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "X-Request-Id: $name" -d "$body" "$lb/v1/completions" >"$run/r/$name.code" 2>/dev/null || true
}
mkdir -p "$run/r"

# Restarts replica $1 and waits until nginx routes to it again: nginx tries a replica marked failed again after
# fail_timeout, one request at a time, until one succeeds. Waiting for that, as a balancer in production would, lets
# the next check start with both replicas in rotation.
restart_into_rotation() {
  local i=$1 k back=0
  start_replica "$i"
  wait_ready "http://127.0.0.1:$(http_port "$i")/health/ready"
  for k in $(seq 1 40); do
    post "back$i-$k" '{"prompt":"y = ","max_tokens":2}'
    grep -qi "^x-upstream: .*:$(http_port "$i")" "$run/r/back$i-$k.h" && { back=1; break; }
    sleep 0.5
  done
  [ "$back" = 1 ] && pass "the restarted replica $i is back in rotation" || fail "nginx did not route to the restarted replica $i"
}

# 1. Requests through nginx succeed and are balanced.
for i in $(seq 1 12); do post "basic$i" '{"prompt":"def f(x):","max_tokens":8,"temperature":0}' & done
wait_jobs() { for job in $(jobs -p); do [ "$job" = "$nginx_pid" ] || { for p in "${pids[@]}"; do [ "$p" = "$job" ] && continue 2; done; wait "$job" || true; }; done; }
wait_jobs
ok=0; served1=0; served2=0
for i in $(seq 1 12); do
  [ "$(cat "$run/r/basic$i.code")" = 200 ] && grep -q '"completion_tokens":8' "$run/r/basic$i.b" && ok=$((ok + 1))
  grep -qi "^x-upstream: .*:$(http_port 1)" "$run/r/basic$i.h" && served1=$((served1 + 1))
  grep -qi "^x-upstream: .*:$(http_port 2)" "$run/r/basic$i.h" && served2=$((served2 + 1))
done
[ "$ok" = 12 ] && [ "$served1" -gt 0 ] && [ "$served2" -gt 0 ] \
  && pass "12/12 requests through nginx, served by replica 1: $served1, replica 2: $served2" \
  || fail "basic: $ok/12 succeeded; replica 1 served $served1, replica 2 $served2"

# 1b. gRPC through nginx's gRPC port (a Node.js @grpc/grpc-js client over the same proto): calls succeed and both
#     replicas serve some (each replica's vllm:generation_tokens_total grows).
tokens() { curl -s "http://127.0.0.1:$(http_port "$1")/metrics" | awk '/^vllm:generation_tokens_total/ { s += $NF } END { print s + 0 }'; }
if command -v node >/dev/null && [ -d "$root/tests/proto-check/node_modules/@grpc/grpc-js" ]; then
  before1=$(tokens 1); before2=$(tokens 2)
  if node "$root/tests/proto-check/generate.js" "127.0.0.1:$((base + 10))" 8 >"$run/r/grpc.out" 2>&1; then
    after1=$(tokens 1); after2=$(tokens 2)
    if [ "${after1%.*}" -gt "${before1%.*}" ] && [ "${after2%.*}" -gt "${before2%.*}" ]; then
      pass "8/8 gRPC Generate calls through nginx, both replicas served some"
    else
      fail "gRPC through nginx: calls succeeded but not balanced (replica 1 tokens $before1 -> $after1, replica 2 $before2 -> $after2)"
    fi
  else
    fail "gRPC through nginx: $(grep -c '"ok":false' "$run/r/grpc.out") of 8 calls failed: $(head -3 "$run/r/grpc.out")"
  fi
else
  fail "gRPC check needs node and tests/proto-check/node_modules (npm ci in tests/proto-check)"
fi

# 2. Drain: replica 2 gets a long stream directly, then SIGTERM. While it drains, nginx must route around it.
curl -s -N -o "$run/r/drain-stream.b" -H 'Content-Type: application/json' \
  -d '{"prompt":"import os\n","max_tokens":1200,"temperature":0,"ignore_eos":true,"stream":true}' \
  "http://127.0.0.1:$(http_port 2)/v1/completions" &
stream_pid=$!
for _ in $(seq 1 100); do grep -q '^data: {' "$run/r/drain-stream.b" 2>/dev/null && break; sleep 0.05; done
kill -TERM "${pids[2]}"
sleep 0.2
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(http_port 2)/health/ready" || true)
[ "$code" = 503 ] && pass "SIGTERM: replica 2 readiness is 503 while draining" || fail "replica 2 readiness while draining: $code"
ok=0; avoided=0
for i in $(seq 1 10); do
  post "drain$i" '{"prompt":"x = ","max_tokens":4,"temperature":0}'
  [ "$(cat "$run/r/drain$i.code")" = 200 ] && ok=$((ok + 1))
  # The replica that answered is the last address in X-Upstream.
  last=$(grep -i '^x-upstream:' "$run/r/drain$i.h" | tr -d '\r' | awk -F', ' '{print $NF}')
  [ "${last##*:}" = "$(http_port 1)" ] && avoided=$((avoided + 1))
done
[ "$ok" = 10 ] && [ "$avoided" = 10 ] && pass "10/10 requests during the drain succeeded, all answered by the ready replica" \
  || fail "during drain: $ok/10 succeeded, $avoided answered by the ready replica"
wait "$stream_pid" || true
if grep -q '^data: \[DONE\]' "$run/r/drain-stream.b" && ! grep -q '"error"' "$run/r/drain-stream.b" \
   && [ "$(grep -c '^data: {' "$run/r/drain-stream.b")" = 1201 ]; then
  pass "the stream in flight on the draining replica finished (1200 tokens)"
else
  fail "the in-flight stream on the draining replica did not finish cleanly"
fi
set +e; wait "${pids[2]}"; rc=$?; set -e
[ "$rc" = 0 ] && pass "the drained replica exited 0" || fail "the drained replica exited $rc"
restart_into_rotation 2

# 3. Kill replica 1 under load: non-streamed requests must all succeed; streams may only fail after their first chunk.
n_plain=16; n_stream=8
for i in $(seq 1 $n_plain); do post "kill-plain$i" '{"prompt":"def g(y):","max_tokens":120,"temperature":0,"ignore_eos":true}' & done
for i in $(seq 1 $n_stream); do post "kill-stream$i" '{"prompt":"class A:","max_tokens":120,"temperature":0,"ignore_eos":true,"stream":true}' & done
# Kill once replica 1 is busy generating.
for _ in $(seq 1 100); do
  curl -s "http://127.0.0.1:$(http_port 1)/metrics" | grep -q '^vllm:num_requests_running{[^}]*} [1-9]' && break
  sleep 0.05
done
{ kill -KILL "${pids[1]}"; wait "${pids[1]}"; } 2>/dev/null || true
pids[1]=""
wait_jobs
lost=0; retried=0; cut=0; ok=0
for i in $(seq 1 $n_plain); do
  if [ "$(cat "$run/r/kill-plain$i.code")" = 200 ] && grep -q '"completion_tokens":120' "$run/r/kill-plain$i.b"; then ok=$((ok + 1)); else lost=$((lost + 1)); fi
  grep -qi '^x-upstream: .*, ' "$run/r/kill-plain$i.h" && retried=$((retried + 1))
done
for i in $(seq 1 $n_stream); do
  b="$run/r/kill-stream$i.b"
  if grep -q '^data: \[DONE\]' "$b" && [ "$(grep -c '^data: {' "$b")" = 121 ]; then ok=$((ok + 1))
  elif grep -q '^data: {' "$b"; then cut=$((cut + 1))   # had started streaming: allowed to end early
  else lost=$((lost + 1)); fi
  grep -qi '^x-upstream: .*, ' "$run/r/kill-stream$i.h" && retried=$((retried + 1))
done
[ "$lost" = 0 ] && [ "$retried" -gt 0 ] \
  && pass "replica killed under load: $ok/$((n_plain + n_stream)) complete, $retried retried on the other replica, $cut streams cut after they had started, 0 lost" \
  || fail "replica killed under load: $lost lost before streaming started ($ok complete, $retried retried, $cut cut)"

# 4a. A burst of 429s must not take replicas out of rotation. Each request below is 64 sequences, more than either
#     replica's queue holds (--max-queued-requests 48): every replica answers 429 at once. Had nginx counted 429 as a
#     failure (http_429 in proxy_next_upstream, max_fails=1), both replicas would be out for fail_timeout and the
#     requests after the burst would get nginx's 502.
restart_into_rotation 1  # killed in check 3
burst='{"prompt":["a","b","c","d"],"n":16,"max_tokens":4}'
for i in $(seq 1 12); do post "burst$i" "$burst" & done
wait_jobs
limited=0
for i in $(seq 1 12); do [ "$(cat "$run/r/burst$i.code")" = 429 ] && limited=$((limited + 1)); done
ok=0; served1=0; served2=0
for i in $(seq 1 10); do
  post "after-burst$i" '{"prompt":"z = ","max_tokens":2,"temperature":0}'
  [ "$(cat "$run/r/after-burst$i.code")" = 200 ] && ok=$((ok + 1))
  grep -qi "^x-upstream: 127.0.0.1:$(http_port 1)$(printf '\r')\?$" "$run/r/after-burst$i.h" && served1=$((served1 + 1))
  grep -qi "^x-upstream: 127.0.0.1:$(http_port 2)$(printf '\r')\?$" "$run/r/after-burst$i.h" && served2=$((served2 + 1))
done
[ "$limited" = 12 ] && [ "$ok" = 10 ] && [ "$served1" -gt 0 ] && [ "$served2" -gt 0 ] \
  && pass "a burst of 12 429s left both replicas in rotation: the next 10 requests succeeded, replica 1 served $served1, replica 2 $served2" \
  || fail "after a burst of 429s ($limited/12 were 429): $ok/10 requests succeeded, replica 1 served $served1, replica 2 $served2 (first: $(head -c 200 "$run/r/after-burst1.b"))"

# 4b. A 3 MB body (below the server's 4 MiB limit, above nginx's 1 MiB default) reaches the server: valid JSON padded
#     with whitespace, so the server answers 200.
{ printf '{"prompt":"w = ","max_tokens":2,"temperature":0'; head -c $((3 * 1024 * 1024)) /dev/zero | tr '\0' ' '; printf '}'; } >"$run/r/big.json"
code=$(curl -s -D "$run/r/big.h" -o "$run/r/big.b" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "@$run/r/big.json" "$lb/v1/completions" || true)
[ "$code" = 200 ] && grep -q '"completion_tokens":2' "$run/r/big.b" \
  && pass "a 3 MB body passed nginx and the server answered it" \
  || fail "a 3 MB body through nginx: HTTP $code $(head -c 200 "$run/r/big.b")"

# 4c. Exactly one X-Request-Id on every response, the caller's: on successes (basic*), 429s (burst*) and the big body.
bad=""
for h in "$run"/r/basic*.h "$run"/r/burst*.h "$run"/r/after-burst*.h; do
  id=$(basename "$h" .h)
  [ "$(grep -ci '^x-request-id:' "$h")" = 1 ] && grep -qi "^x-request-id: $id$(printf '\r')\?$" "$h" || bad="$bad $id"
done
[ "$(grep -ci '^x-request-id:' "$run/r/big.h")" = 1 ] || bad="$bad big"
[ -z "$bad" ] && pass "every response carried exactly one X-Request-Id, the caller's" \
  || fail "responses without exactly one X-Request-Id (the caller's):$bad"

if [ "$failures" -gt 0 ]; then log "$failures check(s) failed; nginx log: $run/error.log"; KEEP_RUN=1; exit 1; fi
log "all checks passed"
