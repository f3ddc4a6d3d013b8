#!/usr/bin/env bash
# The images this build makes, against those of the anchor (bench/anchor.sh: grounds before the workspace,
# whose whole binary was every image's entry), for a builtin task (titanic) and a command task:
#   - the size of the image and of its entry layer (`/usr/local/bin/train`);
#   - a first `train local`: the image built from its base alone (no layer of it cached), then the job;
#   - a push of the image to a fresh registry that holds its base already (as a registry does after the
#     first push): seconds, and the bytes the registry received.
# The two builds alternate, BENCH_IMAGE_PAIRS pairs (3). Prints a Markdown section on standard output.
# GROUNDS and ANCHOR name the two binaries; the Python base image comes from `make base-image`.
set -euo pipefail
cd "$(dirname "$0")/.."
GROUNDS="$(realpath "${GROUNDS:?set GROUNDS to this build}")"
ANCHOR="$(realpath "${ANCHOR:?set ANCHOR to the anchor build (bench/anchor.sh)}")"
PAIRS="${BENCH_IMAGE_PAIRS:-3}"
BASE=grounds-test/python:bookworm

docker image inspect "$BASE" >/dev/null 2>&1 || {
  echo "bench: no $BASE image on this engine: make base-image" >&2
  exit 1
}
if [ ! -x /usr/bin/docker-registry ]; then
  echo "bench: installing docker-registry" >&2
  tests/apt-install.sh docker-registry
fi

work="$(mktemp -d)"
registry_pid=""
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# measure CMD...: prints the wall seconds of CMD (its output discarded; on failure, shown, and the bench stops).
measure() {
  /usr/bin/time -f "%e" -o "$work/time.txt" "$@" > "$work/out.txt" 2>&1 || { cat "$work/out.txt" >&2; exit 1; }
  cat "$work/time.txt"
}
stats() { python3 -c "import statistics,sys; v=sorted(map(float,sys.argv[1:])); print('%.2f %.2f %.2f' % (statistics.median(v), v[0], v[-1]))" "$@"; }
mb() { python3 -c "import sys; print('%.1f' % (int(sys.argv[1]) / 1e6))" "$1"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The tasks: titanic as it is, and a command task on the Python base.
cp -r fixtures/titanic "$work/titanic"
mkdir -p "$work/command/src"
cp fixtures/titanic/titanic.csv "$work/command/"
printf 'import os\nprint(len(os.listdir(os.environ["SM_CHANNEL_TRAINING"])))\nprint("###METRIC###files:1###")\n' > "$work/command/src/train.py"
cat > "$work/command/task.toml" <<TOML
[task]
name = "bench-command"
[task.command]
source = "src"
run = ["python3", "train.py"]
[container]
base_image = "$BASE"
[channels]
training = "titanic.csv"
TOML

binary_of() { if [ "$1" = anchor ]; then echo "$ANCHOR"; else echo "$GROUNDS"; fi; }

tag_of() { # tag_of SIDE TASK: the image tag the side's plan names
  GROUNDS_HOME="$work/home-$1" "$(binary_of "$1")" train local "$work/$2/task.toml" --dry-run \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["image"]["tag"])'
}

# first_local SIDE TASK: seconds of a `train local` whose image has no cached layer.
first_local() {
  local tag; tag="$(tag_of "$1" "$2")"
  docker rmi -f "$tag" >/dev/null 2>&1 || true
  docker builder prune -af >/dev/null 2>&1 || true
  GROUNDS_HOME="$work/home-$1" measure "$(binary_of "$1")" train local "$work/$2/task.toml" --quiet --force
}

# push TAG: "seconds bytes" of pushing TAG to a fresh registry that holds the base image already.
push() {
  local port dir; port="$(free_port)"; dir="$work/registry-$port"
  mkdir -p "$dir/data"
  printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$dir/data" "$port" > "$dir/config.yml"
  /usr/bin/docker-registry serve "$dir/config.yml" > "$dir/log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 1 100); do
    python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
    sleep 0.2
  done
  docker tag "$BASE" "127.0.0.1:$port/base:seed"
  docker push --quiet "127.0.0.1:$port/base:seed" > /dev/null
  local before after seconds
  before="$(du -sb "$dir/data" | cut -f1)"
  docker tag "$1" "127.0.0.1:$port/grounds/bench:1"
  seconds="$(measure docker push "127.0.0.1:$port/grounds/bench:1")"
  after="$(du -sb "$dir/data" | cut -f1)"
  kill "$registry_pid"; wait "$registry_pid" 2>/dev/null || true; registry_pid=""
  docker rmi "127.0.0.1:$port/base:seed" "127.0.0.1:$port/grounds/bench:1" >/dev/null 2>&1 || true
  echo "$seconds $((after - before))"
}

rows=()
for task in titanic command; do
  declare -A firsts=() pushes=() pushed=() size=() entry=()
  for ((k = 0; k < PAIRS; k++)); do
    for side in anchor this; do
      echo "bench: images, $task, $side, pair $((k + 1)) of $PAIRS" >&2
      firsts[$side]+="$(first_local "$side" "$task") "
      tag="$(tag_of "$side" "$task")"
      read -r seconds bytes < <(push "$tag")
      pushes[$side]+="$seconds "
      pushed[$side]="$bytes"
      size[$side]="$(docker image inspect -f '{{.Size}}' "$tag")"
      entry[$side]="$(docker history --human=false --no-trunc --format '{{.Size}}\t{{.CreatedBy}}' "$tag" | grep -m1 '/usr/local/bin/train' | cut -f1)"
    done
  done
  for side in anchor this; do
    name="this build"; [ "$side" = anchor ] && name="before the workspace"
    read -r f_med f_min f_max < <(stats ${firsts[$side]})
    read -r p_med p_min p_max < <(stats ${pushes[$side]})
    rows+=("| $task | $name | $(mb "${size[$side]}") | $(mb "${entry[$side]}") | $f_med ($f_min–$f_max) | $p_med ($p_min–$p_max) | $(mb "${pushed[$side]}") |")
  done
  unset firsts pushes pushed size entry
done

echo "## Images"
echo
echo "The image of titanic (a builtin task, \`FROM scratch\`) and of a command task (on the Python base"
echo "image of \`make base-image\`), made by this build and by grounds before the workspace (commit ${BENCH_ANCHOR_REV:-22875db}),"
echo "whose whole binary was every image's entry. A first \`train local\` builds the image with no layer of"
echo "it cached (the base is there) and runs the job; a push sends the image to a fresh registry that holds"
echo "the base already, as a registry does after a first push: what a new build of grounds costs every"
echo "image. $PAIRS alternating pairs; seconds are medians with their range; sizes in MB (10^6 bytes), the"
echo "pushed bytes as the registry stores them (compressed)."
echo
echo "| task | build | image MB | entry layer MB | first train local s | push s | pushed MB |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
