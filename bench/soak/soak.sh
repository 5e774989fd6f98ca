#!/usr/bin/env bash
# The long soak: the functional SoakTests (mixed HTTP and gRPC load with client disconnects, expiring deadlines, bad
# requests and bursts past a small queue, against the real server in process) for SECONDS seconds, default 600.
# Prints the figures (served, cancelled, timed out, rejected, peak and final KV blocks, memory after warm-up and at the
# end; managed heap and RSS, whose growth after warm-up the test bounds) and writes them to bench/results/soak-<date>.md.
# CI runs the same test for 30 s.
#   bench/soak/soak.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-600}"
report="bench/results/soak-$(date -u +%Y-%m-%d).md"
mkdir -p bench/results
export SOAK_SECONDS="$seconds" SOAK_REPORT="$PWD/$report"
dotnet test tests/InferenceServer.FunctionalTests/InferenceServer.FunctionalTests.csproj -c Release \
  --filter "FullyQualifiedName~InferenceServer.FunctionalTests.SoakTests" --logger "console;verbosity=normal"
cat "$report"
