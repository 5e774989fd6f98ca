#!/usr/bin/env bash
# Builds and runs a Dockerfile's image the way a container engine would, without one (CI has none):
#
#   deploy/check-dockerfile.sh <Dockerfile> [--publish-only]
#
#  1. Build stage (the stage the final stage copies from with COPY --from=<stage>): a temporary root file system
#     gets exactly what the stage's COPY lines copy from the build context (the repository's files that git tracks or
#     would track, less .dockerignore), at the stage's WORKDIR; then the stage's own RUN lines run there, as written
#     in the Dockerfile (absolute container paths such as "-o /app" are mapped into the temporary root). A file the
#     Dockerfile forgot to COPY is missing here exactly as it would be in `docker build`.
#  2. Final stage (the last FROM): a second root gets the COPY --from=<build stage> output and the context COPY lines
#     (the model) at its WORKDIR. Lines that only set up the base image (RUN apt-get/useradd, COPY --from=<image
#     stage>) are skipped: this machine's .NET runtime stands in for the base image's.
#  3. Run: ENTRYPOINT + CMD as the image runs them: from WORKDIR, with the stage's ENV, as the USER (an unprivileged
#     uid through setpriv when this script runs as root; "app" is uid 1654 as in the aspnet images, or the uid a RUN
#     useradd gives it), with --urls and --grpc-port moved to free loopback ports. Then: wait for /health/ready, run
#     the HEALTHCHECK command (port substituted), send one completion, SIGTERM, and expect exit code 0.
#
# --publish-only stops after step 1 (for an image that cannot start without its device). KEEP_RUN=1 keeps the
# temporary folder. Exit code 0 when every step passed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dockerfile=${1:?usage: $0 <Dockerfile> [--publish-only]}
publish_only=0
[ "${2:-}" = --publish-only ] && publish_only=1
[ -f "$dockerfile" ] || { echo "error: $dockerfile: no such file" >&2; exit 2; }
dockerfile=$(cd "$(dirname "$dockerfile")" && pwd)/$(basename "$dockerfile")
name=$(basename "$dockerfile")

run=$(mktemp -d /tmp/check-dockerfile.XXXXXX)
chmod 755 "$run"
pid=""
log() { printf '[check-dockerfile %s] %s\n' "$name" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ "${KEEP_RUN:-0}" = 1 ]; then log "run folder kept: $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT

# --- parse: logical lines (continuations joined, comments dropped), split into stages ---
declare -a lines=()
current=""
while IFS= read -r line || [ -n "$line" ]; do
  if [ -z "$current" ] && [[ "$line" =~ ^[[:space:]]*(#|$) ]]; then continue; fi
  if [[ "$line" =~ \\[[:space:]]*$ ]]; then
    current+="${line%\\*} "
    continue
  fi
  lines+=("$current$line")
  current=""
done <"$dockerfile"

declare -a stage_of=() stage_names=()
stage=-1
for i in "${!lines[@]}"; do
  read -r instr rest <<<"${lines[$i]}"
  if [ "${instr^^}" = FROM ]; then
    stage=$((stage + 1))
    # FROM <image> [AS <name>]
    read -r _ _ as_name <<<"$rest"
    stage_names[$stage]=${as_name:-$stage}
  fi
  stage_of[$i]=$stage
done
final=$stage
[ "$final" -ge 1 ] || die "expected a multi-stage Dockerfile (a build stage and a final stage)"

# The build stage is the stage whose output the final stage copies (COPY --from=<name>) and that has RUN lines.
build=""
for i in "${!lines[@]}"; do
  [ "${stage_of[$i]}" = "$final" ] || continue
  if [[ "${lines[$i]}" =~ ^COPY[[:space:]]+--from=([^[:space:]]+) ]]; then
    from=${BASH_REMATCH[1]}
    for s in "${!stage_names[@]}"; do
      [ "${stage_names[$s]}" = "$from" ] || continue
      for j in "${!lines[@]}"; do
        [ "${stage_of[$j]}" = "$s" ] && [[ "${lines[$j]}" =~ ^RUN[[:space:]] ]] && build=$s
      done
    done
  fi
done
[ -n "$build" ] || die "no build stage: the final stage copies from no stage that runs a command"
log "build stage: ${stage_names[$build]}; final stage: $final"

# --- the build context: files git tracks or would track, less .dockerignore (directory patterns: "x/", "**/x/") ---
context="$run/context"
mkdir -p "$context"
ignored() {
  local path=$1 pattern
  [ -f "$root/.dockerignore" ] || return 1
  while IFS= read -r pattern; do
    [[ -z "$pattern" || "$pattern" == \#* ]] && continue
    pattern=${pattern%/}
    if [[ "$pattern" == \*\*/* ]]; then
      [[ "/$path/" == */"${pattern#\*\*/}"/* ]] && return 0
    else
      [[ "$path" == "$pattern" || "$path" == "$pattern"/* ]] && return 0
    fi
  done <"$root/.dockerignore"
  return 1
}
while IFS= read -r file; do
  [ -e "$root/$file" ] || continue
  ignored "$file" && continue
  mkdir -p "$context/$(dirname "$file")"
  cp -p "$root/$file" "$context/$file"
done < <(cd "$root" && git ls-files --cached --others --exclude-standard)

# Maps an absolute container path into a stage's root ($1), leaving anything else alone.
in_root() { case "$2" in /*) printf '%s%s' "$1" "$2" ;; *) printf '%s' "$2" ;; esac; }

# COPY <src>... <dest> from directory $2 (context or a stage root) into root $1 with working directory $3.
copy_into() {
  local rootfs=$1 from_dir=$2 workdir=$3; shift 3
  local -a args=("$@")
  local dest=${args[-1]} n=$((${#args[@]} - 1)) k src target
  case "$dest" in /*) target="$rootfs$dest" ;; *) target="$rootfs$workdir/$dest" ;; esac
  for ((k = 0; k < n; k++)); do
    src=${args[$k]}
    local source_path="$from_dir/${src#/}"
    [ -e "$source_path" ] || die "COPY $src: not found in the $( [ "$from_dir" = "$context" ] && echo "build context" || echo "source stage")"
    if [ -d "$source_path" ]; then
      mkdir -p "$target"
      cp -a "$source_path/." "$target/"
    elif [ "$n" -gt 1 ] || [[ "$dest" == */ ]]; then
      mkdir -p "$target"
      cp -p "$source_path" "$target/"
    else
      mkdir -p "$(dirname "$target")"
      cp -p "$source_path" "$target"
    fi
  done
}

# WORKDIR $2 (absolute, or relative to the current one) in root $1: sets $workdir and creates the folder.
change_workdir() {
  case "$2" in /*) workdir=$2 ;; *) workdir="$workdir/$2" ;; esac
  mkdir -p "$1$workdir"
}

# --- 1. the build stage ---
build_root="$run/build-root"
mkdir -p "$build_root"
workdir=/
for i in "${!lines[@]}"; do
  [ "${stage_of[$i]}" = "$build" ] || continue
  read -r instr rest <<<"${lines[$i]}"
  case "${instr^^}" in
    WORKDIR) change_workdir "$build_root" "$rest" ;;
    COPY)
      # shellcheck disable=SC2086
      set -f; copy_into "$build_root" "$context" "$workdir" $rest; set +f ;;
    RUN)
      # Absolute container paths in the command ("-o /app") point into the stage's root.
      command=$(sed -E "s#(^|[[:space:]=])/#\1$build_root/#g" <<<"$rest")
      log "RUN $rest"
      (cd "$build_root$workdir" && bash -c "$command") >"$run/build.log" 2>&1 \
        || { tail -n 30 "$run/build.log" >&2; die "the build stage's RUN failed: $rest"; } ;;
    FROM | ENV | ARG | LABEL) ;;
    *) log "build stage: $instr is not reproduced" ;;
  esac
done
log "build stage ok"
if [ "$publish_only" = 1 ]; then log "publish only: done"; exit 0; fi

# --- 2. the final stage's layout ---
final_root="$run/final-root"
mkdir -p "$final_root"
workdir=/
user=""
uid=""
declare -a env=() entrypoint=() cmd=() healthcheck=()
json_array() { jq -r '.[]' <<<"$1" 2>/dev/null || die "expected the exec (JSON array) form: $1"; }
for i in "${!lines[@]}"; do
  [ "${stage_of[$i]}" = "$final" ] || continue
  read -r instr rest <<<"${lines[$i]}"
  case "${instr^^}" in
    WORKDIR) change_workdir "$final_root" "$rest" ;;
    COPY)
      if [[ "$rest" =~ ^--from=([^[:space:]]+)[[:space:]]+(.*)$ ]]; then
        if [ "${BASH_REMATCH[1]}" = "${stage_names[$build]}" ]; then
          # shellcheck disable=SC2086
          set -f; copy_into "$final_root" "$build_root" "$workdir" ${BASH_REMATCH[2]}; set +f
        else
          log "skipped (base image files, this machine has its own): COPY $rest"
        fi
      else
        # shellcheck disable=SC2086
        set -f; copy_into "$final_root" "$context" "$workdir" $rest; set +f
      fi ;;
    RUN)
      if [[ "$rest" =~ useradd.*--uid[[:space:]]+([0-9]+).*[[:space:]]([a-z_][a-z0-9_-]*)[[:space:]]*$ ]]; then
        declare "uid_of_${BASH_REMATCH[2]//-/_}=${BASH_REMATCH[1]}"
      fi
      log "skipped (base image setup): RUN ${rest:0:60}..." ;;
    ENV)
      # shellcheck disable=SC2206
      set -f; env+=($rest); set +f ;;
    USER) user=${rest%%:*} ;;
    ENTRYPOINT) mapfile -t entrypoint < <(json_array "$rest") ;;
    CMD) mapfile -t cmd < <(json_array "$rest") ;;
    HEALTHCHECK)
      [[ "$rest" =~ CMD[[:space:]]+(\[.*\])[[:space:]]*$ ]] && mapfile -t healthcheck < <(json_array "${BASH_REMATCH[1]}") ;;
    *) ;;
  esac
done
[ "${#entrypoint[@]}" -gt 0 ] || die "the final stage has no ENTRYPOINT"

# USER: a number, or a name ("app": the aspnet images' uid 1654, or the uid a RUN useradd gave it).
case "$user" in
  "" | root) uid=0 ;;
  *[!0-9]*) var="uid_of_${user//-/_}"; uid=${!var:-}; [ -n "$uid" ] || { [ "$user" = app ] && uid=1654; } ;;
  *) uid=$user ;;
esac
[ -n "$uid" ] || die "USER $user: unknown uid"
[ "$uid" != 0 ] || die "the image runs as root (no USER): it must run as an unprivileged user"

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  die "no free port"
}
http_port=$(free_port)
grpc_port=$(free_port)
[ "$grpc_port" != "$http_port" ] || grpc_port=$((http_port + 1))

# ENTRYPOINT + CMD, with absolute paths into the final root and the listeners moved to loopback ports.
declare -a argv=()
next=""
for arg in "${entrypoint[@]}" "${cmd[@]}"; do
  case "$next" in
    urls) arg="http://127.0.0.1:$http_port" ;;
    grpc) arg=$grpc_port ;;
    *) [[ "$arg" == /* && -e "$final_root$arg" ]] && arg="$final_root$arg" ;;
  esac
  next=""
  case "$arg" in --urls) next=urls ;; --grpc-port) next=grpc ;; esac
  argv+=("$arg")
done
[[ " ${argv[*]} " == *" --urls "* ]] || argv+=(--urls "http://127.0.0.1:$http_port")

# The unprivileged user must read the app; its HOME is an empty folder it owns (the aspnet images have /home/app).
home="$run/home"
mkdir -p "$home"
chmod -R a+rX "$final_root"
declare -a as_user=()
if [ "$(id -u)" = 0 ]; then
  command -v setpriv >/dev/null || die "setpriv (util-linux) is required to run as USER $user"
  chown "$uid:$uid" "$home"
  as_user=(setpriv --reuid="$uid" --regid="$uid" --clear-groups --)
  log "running as USER $user (uid $uid) through setpriv"
else
  log "not root: running as uid $(id -u) instead of USER $user (uid $uid)"
fi
log "ENTRYPOINT+CMD from $workdir: ${argv[*]#"$final_root"}"
(cd "$final_root$workdir" && exec env -i PATH="$PATH" HOME="$home" DOTNET_CLI_TELEMETRY_OPTOUT=1 "${env[@]}" "${as_user[@]}" "${argv[@]}") \
  >"$run/server.log" 2>&1 &
pid=$!

base="http://127.0.0.1:$http_port"
ready=0
for _ in $(seq 1 600); do
  kill -0 "$pid" 2>/dev/null || { tail -n 20 "$run/server.log" >&2; die "the server exited before it was ready"; }
  curl -sf "$base/health/ready" >/dev/null 2>&1 && { ready=1; break; }
  sleep 0.2
done
[ "$ready" = 1 ] || { tail -n 20 "$run/server.log" >&2; die "not ready within 120 s"; }
log "ok: /health/ready"
owner=$(ps -o uid= -p "$pid" | tr -d ' ')
[ "$(id -u)" != 0 ] || [ "$owner" = "$uid" ] || die "the server runs as uid $owner, not $uid"

if [ "${#healthcheck[@]}" -gt 0 ]; then
  declare -a probe=()
  for arg in "${healthcheck[@]}"; do probe+=("${arg//127.0.0.1\/8080/127.0.0.1/$http_port}"); done
  "${probe[@]}" || die "the image's HEALTHCHECK command failed: ${probe[*]}"
  log "ok: HEALTHCHECK"
fi

code=$(curl -s -o "$run/completion.json" -w '%{http_code}' --max-time 60 -H 'Content-Type: application/json' \
  -d '{"prompt":"def fibonacci(n):","max_tokens":8,"temperature":0}' "$base/v1/completions" || true)
[ "$code" = 200 ] && grep -q '"completion_tokens":8' "$run/completion.json" \
  || die "completion: HTTP $code $(head -c 300 "$run/completion.json" 2>/dev/null)"
log "ok: a completion (8 tokens)"

kill -TERM "$pid"
rc=0
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$pid" 2>/dev/null && die "still running 60 s after SIGTERM"
wait "$pid" || rc=$?
pid=""
[ "$rc" = 0 ] || { tail -n 20 "$run/server.log" >&2; die "exit code $rc after SIGTERM"; }
log "ok: exit code 0 after SIGTERM"
log "passed"
