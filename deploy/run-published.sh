#!/usr/bin/env bash
# Proves the container recipe without a Docker engine: the Dockerfile's publish command and entrypoint, run here,
# with the model laid out as the image lays it out (/app/models/tiny-pycoder), then a readiness probe and a completion.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
app=$(mktemp -d)
port=${PORT:-18080}
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$app"' EXIT

dotnet publish "$root/src/InferenceServer/InferenceServer.csproj" -c Release -o "$app" >/dev/null
mkdir -p "$app/models" && cp -r "$root/models/tiny-pycoder" "$app/models/"

# Same entrypoint as the image; started from / so nothing but the published folder is found.
(cd / && ASPNETCORE_URLS="http://127.0.0.1:$port" exec dotnet "$app/InferenceServer.dll") &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/health/ready"; echo
curl -sf "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt": "def fibonacci(n):", "max_tokens": 12, "temperature": 0}'; echo
