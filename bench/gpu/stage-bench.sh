#!/usr/bin/env bash
# Stages the GPU benchmark (bench/gpu/README.md): the server's self-contained linux-x64 build with the load
# generator and the benchmark scripts, in pieces for the device tool.
#
#   bench/gpu/stage-bench.sh        (from anywhere in the checkout; needs the .NET SDK and ../shared/gpu/stage.sh)
#
# The GPU machine has no .NET, so the load generator is published self-contained for linux-x64 too; only its own
# four files are kept (apphost, .dll, .deps.json, .runtimeconfig.json) in bench/gpu/out/loadgen (ignored by git):
# its runtime files are the same as the server's self-contained publish, and run-llama1b.sh copies the four into
# the server's folder on the machine. Then ../shared/gpu/stage.sh packs the server with the extra paths
# bench/gpu/out/loadgen, bench/gpu/out/stage-info.txt (commit and date), bench/gpu/llama1b and
# bench/gpu/run-llama1b.sh, and prints the device calls to make.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
stage=${STAGE_SH:-$root/../shared/gpu/stage.sh}
[[ -x $stage || -f $stage ]] || { echo "no $stage (set STAGE_SH)"; exit 1; }

out=bench/gpu/out
rm -rf "$out"
mkdir -p "$out/loadgen"
publish=$(mktemp -d /tmp/loadgen-publish.XXXX)
trap 'rm -rf "$publish" "$publish.log"' EXIT
echo "publishing the load generator (self-contained, linux-x64)..."
if ! dotnet publish bench/InferenceServer.LoadGenerator/InferenceServer.LoadGenerator.csproj -c Release -r linux-x64 \
    --self-contained true -o "$publish" > "$publish.log" 2>&1; then
    tail -30 "$publish.log"
    exit 1
fi
for file in InferenceServer.LoadGenerator InferenceServer.LoadGenerator.dll InferenceServer.LoadGenerator.deps.json \
    InferenceServer.LoadGenerator.runtimeconfig.json; do
    [[ -f $publish/$file ]] || { echo "the publish has no $file"; exit 1; }
    cp "$publish/$file" "$out/loadgen/"
done
{
    echo "commit $(git rev-parse --short HEAD) ($(git log -1 --format=%cd --date=iso-strict)), $(git status --short --untracked-files=no | wc -l) modified tracked files"
    echo "staged $(date -u '+%Y-%m-%d %H:%M UTC') with .NET SDK $(dotnet --version)"
} > "$out/stage-info.txt"
cat "$out/stage-info.txt"

# The GPU tests (tests/InferenceServer.GpuTests, xUnit v3: a self-running executable) travel the same way: their own
# files only (apphost, assembly, deps, runtimeconfig, the xUnit assemblies), copied into the server's folder there.
mkdir -p "$out/gputests"
echo "publishing the GPU tests (self-contained, linux-x64)..."
if ! dotnet publish tests/InferenceServer.GpuTests/InferenceServer.GpuTests.csproj -c Release -r linux-x64 \
    --self-contained true -o "$publish.tests" > "$publish.log" 2>&1; then
    tail -30 "$publish.log"
    exit 1
fi
cp "$publish.tests"/InferenceServer.GpuTests "$publish.tests"/InferenceServer.GpuTests.dll "$publish.tests"/InferenceServer.GpuTests.deps.json \
    "$publish.tests"/InferenceServer.GpuTests.runtimeconfig.json "$publish.tests"/xunit.*.dll "$publish.tests"/Microsoft.Bcl.AsyncInterfaces.dll \
    "$out/gputests/"
rm -rf "$publish.tests"

# The default model rides inside the compressed application (as a copy under out/), so that the tracked files can be
# emptied while the device calls run: the checkout travels with every call and its size shrinks each piece.
cp -r models/tiny-pycoder "$out/tiny-pycoder"
: > models/tiny-pycoder/model.onnx
: > models/tiny-pycoder/model.safetensors
echo "models/tiny-pycoder/model.{onnx,safetensors} are emptied for the device calls: restore them afterwards with"
echo "  git checkout -- models/tiny-pycoder"

"$stage" src/InferenceServer/InferenceServer.csproj "$out/loadgen" "$out/gputests" "$out/tiny-pycoder" "$out/stage-info.txt" \
    bench/gpu/llama1b bench/gpu/lib.sh bench/gpu/run-llama1b.sh bench/gpu/run-split.sh bench/gpu/split_report.py bench/gpu/conformance.py \
    tests/fixtures/llama-gqa tests/fixtures/qwen2 tests/fixtures/llama-pruned tests/fixtures/llama-moh tests/fixtures/deepseek-v3-mla tests/fixtures/deepseek-v3-dense-mla \
    tests/fixtures/qwen2-moe tests/fixtures/qwen3-moe tests/fixtures/mixtral
