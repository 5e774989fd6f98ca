#!/usr/bin/env bash
# Packs the CPU attention benchmark for the GPU machine's host (no .NET there): a trimmed self-contained linux-x64
# publish with run.sh beside it, as bench/attention-cpu/out/attn.tar.xz (ignored by git; a few MB, carried with the call).
# Prints the device call that runs issue 17's host measurements in one go: decode at 16 threads (fp16/bf16/fp32,
# group 4), decode with groups of 8 query heads, a 512-row prefill chunk, and PyTorch's SDPA side by side.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rm -rf "$HERE/out/pub"
dotnet publish "$HERE/AttentionCpuBench.csproj" -c Release -r linux-x64 --self-contained -p:PublishTrimmed=true \
    -o "$HERE/out/pub" --nologo -v quiet >&2
cp "$HERE/run.sh" "$HERE/out/pub/run.sh"
tar -cJf "$HERE/out/attn.tar.xz" -C "$HERE/out" pub
echo "packed $(du -h "$HERE/out/attn.tar.xz" | cut -f1) into bench/attention-cpu/out/attn.tar.xz" >&2

cat <<'CALL'
device call (carry: ["bench/attention-cpu/out/attn.tar.xz"], timeout_s 600), from the repository root:
mkdir -p /tmp/a && tar xJf bench/attention-cpu/out/attn.tar.xz -C /tmp/a \
 && RESULTS=$OUT/attention-cpu-host.md /tmp/a/pub/run.sh --threads 16 \
 && RESULTS=$OUT/attention-cpu-host-group8.md /tmp/a/pub/run.sh --threads 16 --query-heads 64 --storage fp16,bf16 \
 && RESULTS=$OUT/attention-cpu-host-prefill.md /tmp/a/pub/run.sh --threads 16 --batch 1 --context 2048,8192 --query-len 512 --min-pool-gib 0.1 \
 && python3 bench/attention-cpu/torch_sdpa.py 16 > $OUT/torch-sdpa.txt 2>&1
CALL
