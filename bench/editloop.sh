#!/usr/bin/env bash
# The edit-run loop: one line of train.py changes, then the job runs again. Side by side in one run:
#   - local: `grounds train local` against a bare `docker run` of the same base image with the code folder
#     mounted (what the SageMaker SDK's local mode does with local code), BENCH_EDIT_PAIRS alternating
#     pairs (10), each after its own one-line change; and how many images the task has at the end (1: no
#     change built one);
#   - remote, when run under tests/services.sh (moto, a registry and the SageMaker stand-in): `grounds train
#     remote --detach` after a one-line change, which returns once CreateTrainingJob is made, this build
#     against ANCHOR (the build before the package left the image, whose every code change built and
#     pushed an image): seconds, and whether an image was pushed.
# Prints a Markdown section on standard output. GROUNDS names this build; ANCHOR the anchor's grounds
# (bench/anchor.sh with BENCH_ANCHOR_REV); the Python base image comes from `make base-image`.
set -euo pipefail
cd "$(dirname "$0")/.."
GROUNDS="$(realpath "${GROUNDS:?set GROUNDS to this build}")"
PAIRS="${BENCH_EDIT_PAIRS:-10}"
BASE=grounds-test/python:bookworm
docker image inspect "$BASE" >/dev/null 2>&1 || {
  echo "bench: no $BASE image on this engine: make base-image" >&2
  exit 1
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

measure() {
  /usr/bin/time -f "%e" -o "$work/time.txt" "$@" > "$work/out.json" 2> "$work/err.txt" || { cat "$work/err.txt" >&2; exit 1; }
  cat "$work/time.txt"
}
stats() { python3 -c "import statistics,sys; v=sorted(map(float,sys.argv[1:])); print('%.2f %.2f %.2f' % (statistics.median(v), v[0], v[-1]))" "$@"; }
json_field() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])); [v := v[k] for k in sys.argv[2:]]; print(json.dumps(v))" "$work/out.json" "$@"; }

# A command task whose train.py has a line that each run changes.
task_dir() { # task_dir DIR NAME EXTRA
  mkdir -p "$1/src"
  printf 'VERSION = 0\nprint("###METRIC###version:%%d###" %% VERSION)\n' > "$1/src/train.py"
  cat > "$1/task.toml" <<TOML
[task]
name = "$2"
[task.command]
source = "src"
run = ["python3", "train.py"]
[container]
base_image = "$BASE"
$3
TOML
}
edit() { sed -i "s/^VERSION = .*/VERSION = $2/" "$1/src/train.py"; }

export GROUNDS_HOME="$work/home"
version=0

# Local.
echo "bench: the edit-run loop, train local against docker run with the code mounted" >&2
task_dir "$work/local" bench-edit ""
"$GROUNDS" train local "$work/local/task.toml" --quiet > /dev/null 2>&1 # the image, once
tree="$work/bare/ml"
mkdir -p "$tree/input/config" "$tree/input/data" "$tree/model" "$tree/output" "$tree/code"
g_times=(); d_times=()
for ((k = 0; k < PAIRS; k++)); do
  version=$((version + 1)); edit "$work/local" "$version"
  g_times+=("$(measure "$GROUNDS" train local "$work/local/task.toml" --json --quiet)")
  [ "$(json_field metrics version)" = "$version.0" ] || { echo "bench: the new code did not run" >&2; exit 1; }
  version=$((version + 1)); edit "$work/local" "$version"
  d_times+=("$(measure docker run --rm -v "$tree:/opt/ml" -v "$work/local/src:/opt/ml/code" -w /opt/ml/code \
    -e TRAINING_JOB_NAME=bare "$BASE" python3 train.py)")
done
images="$(docker images -q grounds/bench-edit | wc -l)"
read -r g_med g_min g_max < <(stats "${g_times[@]}")
read -r d_med d_min d_max < <(stats "${d_times[@]}")
echo "## The edit-run loop"
echo
echo "One line of a command task's train.py changes before every run (on $BASE). Local: $PAIRS alternating"
echo "pairs, wall seconds; the image was built once before the pairs, and the task has $images image(s) after them."
echo
echo "| run, after a one-line change | median s | range s |"
echo "|---|---:|---:|"
echo "| grounds train local | $g_med | $g_min–$g_max |"
echo "| docker run --rm -v TREE:/opt/ml -v SRC:/opt/ml/code BASE python3 train.py | $d_med | $d_min–$d_max |"
echo "| difference of the medians | $(python3 -c "print('%.3f' % ($g_med - $d_med))") | |"
docker images -q grounds/bench-edit | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true

# Remote, on the stand-in, this build against the anchor.
if [ -n "${GROUNDS_TEST_SAGEMAKER:-}" ] && [ -n "${ANCHOR:-}" ]; then
  echo "bench: the edit-run loop on the SageMaker stand-in, this build against the anchor" >&2
  export AWS_ENDPOINT_URL="$GROUNDS_TEST_MOTO" AWS_ENDPOINT_URL_SAGEMAKER="$GROUNDS_TEST_SAGEMAKER"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  export GROUNDS_ROLE=arn:aws:iam::123456789012:role/bench
  remote="[remote]
bucket = \"grounds-bench\"
registry = \"$GROUNDS_TEST_REGISTRY\""
  task_dir "$work/remote-new" bench-edit-new "$remote"
  task_dir "$work/remote-old" bench-edit-old "$remote"
  "$GROUNDS" train remote "$work/remote-new/task.toml" --detach --quiet > /dev/null 2>&1
  "$ANCHOR" train remote "$work/remote-old/task.toml" --detach --quiet > /dev/null 2>&1
  n_times=(); o_times=(); pushed_new=0; pushed_old=0
  for ((k = 0; k < ${BENCH_EDIT_REMOTE_PAIRS:-5}; k++)); do
    version=$((version + 1)); edit "$work/remote-new" "$version"
    n_times+=("$(measure "$GROUNDS" train remote "$work/remote-new/task.toml" --detach --json --quiet)")
    [ "$(json_field submitted pushed)" = true ] && pushed_new=$((pushed_new + 1))
    version=$((version + 1)); edit "$work/remote-old" "$version"
    o_times+=("$(measure "$ANCHOR" train remote "$work/remote-old/task.toml" --detach --json --quiet)")
    [ "$(json_field submitted pushed)" = true ] && pushed_old=$((pushed_old + 1))
  done
  read -r n_med n_min n_max < <(stats "${n_times[@]}")
  read -r o_med o_min o_max < <(stats "${o_times[@]}")
  echo
  echo "Remote, on the SageMaker stand-in with moto's S3 and a local registry: \`train remote --detach\`, which"
  echo "returns once CreateTrainingJob is made, ${BENCH_EDIT_REMOTE_PAIRS:-5} alternating pairs, this build against the one before the"
  echo "package left the image (${ANCHOR_NAME:-$("$ANCHOR" --version)})."
  echo
  echo "| run, after a one-line change | median s | range s | runs that pushed an image |"
  echo "|---|---:|---:|---:|"
  echo "| this build: the package uploaded, the job created | $n_med | $n_min–$n_max | $pushed_new |"
  echo "| before: the image built and pushed, the job created | $o_med | $o_min–$o_max | $pushed_old |"
  docker images --format '{{.Repository}}:{{.Tag}}' | grep 'bench-edit-' | xargs -r docker rmi -f >/dev/null 2>&1 || true
fi
