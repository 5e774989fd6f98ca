#!/usr/bin/env bash
# CPU attention bandwidth benchmark: decode-shaped paged attention (CpuPagedAttention over HostKvPool) reported as GB/s
# of KV read, next to this host's STREAM-like read and copy bandwidth measured in the same run. See README.md.
#
# One command, two places:
#   - in the repository (needs the .NET 10 SDK): publishes a self-contained build to bench/attention-cpu/out/
#     (no SDK needed to run it; copy that folder to another linux-x64 host), then runs it;
#   - in a published folder (out/ holds a copy of this script): runs the binary beside it.
# Arguments go to the benchmark (e.g. --threads 16 --batch 16,32,64 --context 1024,4096,8192); RESULTS=<file> also
# writes the command and the whole output there as Markdown (in the repository it defaults to
# bench/results/attention-cpu-<date>.md).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -x $HERE/AttentionCpuBench ]]; then
  BIN=$HERE/AttentionCpuBench
  RESULTS=${RESULTS:-}
else
  command -v dotnet >/dev/null || { echo "error: no published AttentionCpuBench beside this script and no dotnet SDK to build it" >&2; exit 2; }
  dotnet publish "$HERE/AttentionCpuBench.csproj" -c Release -r linux-x64 --self-contained -o "$HERE/out" --nologo -v quiet >&2
  cp "$HERE/run.sh" "$HERE/out/run.sh"
  BIN=$HERE/out/AttentionCpuBench
  RESULTS=${RESULTS:-$HERE/../results/attention-cpu-$(date -u +%Y-%m-%d).md}
fi

if [[ -z $RESULTS ]]; then
  exec "$BIN" "$@"
fi

load=$(cut -d' ' -f1-3 /proc/loadavg)
output=$(mktemp)
"$BIN" "$@" | tee "$output"
{
  echo "# CPU attention bandwidth, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB;" \
    "load average before the run: $load."
  if git -C "$HERE" rev-parse --short HEAD >/dev/null 2>&1; then echo "Commit: $(git -C "$HERE" rev-parse --short HEAD)."; fi
  echo
  echo "Command: \`bench/attention-cpu/run.sh $*\`"
  echo
  echo '```'
  cat "$output"
  echo '```'
} >"$RESULTS"
rm -f "$output"
echo "wrote $RESULTS" >&2
