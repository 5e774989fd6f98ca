#!/usr/bin/env bash
# Proves the container recipe without a Docker engine: the Dockerfile's publish command, entrypoint and arguments,
# run here, with the model laid out as the image lays it out (/app/models/tiny-pycoder); then the image's
# HEALTHCHECK command, a completion, a scrape of /metrics, and SIGTERM with exit code 0.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
app=$(mktemp -d)
port=${PORT:-18080}
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$app"' EXIT

dotnet publish "$root/src/InferenceServer/InferenceServer.csproj" -c Release -o "$app" >/dev/null
mkdir -p "$app/models" && cp -r "$root/models/tiny-pycoder" "$app/models/"

# Same entrypoint and arguments as the image; started from / so nothing but the published folder is found.
(cd / && exec dotnet "$app/InferenceServer.dll" --log-format json --urls "http://127.0.0.1:$port" --grpc-port $((port + 1)) --shutdown-timeout 30) &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
  sleep 0.2
done
# The Dockerfile's HEALTHCHECK, verbatim but for the port.
bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET /health/ready HTTP/1.0\r\n\r\n' >&3 && head -n1 <&3 | grep -q ' 200 '" \
  && echo "healthcheck: healthy"
curl -sf "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt": "def fibonacci(n):", "max_tokens": 12, "temperature": 0}'; echo
curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^vllm:(generation_tokens_total|request_success_total)'
kill -TERM "$pid"
wait "$pid" && echo "exit code 0 after SIGTERM"
pid=""
