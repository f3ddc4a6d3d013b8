#!/usr/bin/env bash
# make bench: grounds' builtin single-frame task against the same pipeline in scikit-learn, on titanic and
# on a synthetic 1,000,000-row, 20-feature frame. Writes bench/RESULTS.md (wall time, peak memory, AUC).
set -euo pipefail
cd "$(dirname "$0")/.."
GROUNDS="${GROUNDS:?set GROUNDS to the release binary}"
ROWS="${BENCH_ROWS:-1000000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
venv=bench/.venv

if [ ! -x "$venv/bin/python" ]; then
  echo "bench: installing scikit-learn into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r bench/requirements.txt
fi
py="$venv/bin/python"

echo "bench: writing the synthetic frame ($ROWS rows)" >&2
mkdir -p "$work/synthetic"
"$py" bench/make_synthetic.py "$ROWS" "$work/synthetic/synthetic.csv"
synthetic_features="$(head -1 "$work/synthetic/synthetic.csv" | tr ',' '\n' | grep -v '^label$' | paste -sd, -)"
cat > "$work/synthetic/task.toml" <<TOML
[task]
name = "synthetic"
[task.builtin]
kind = "single-frame"
label = "label"
model = "logistic-regression"
folds = 5
[channels]
training = "synthetic.csv"
[hyperparameters]
max_iter = 1000
TOML

# Runs a command under GNU time; prints "seconds peak_mib" and leaves its stdout in $work/out.json.
measure() {
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/out.json" 2> "$work/err.txt" || { cat "$work/err.txt" >&2; exit 1; }
  read -r seconds kib < "$work/time.txt"
  echo "$seconds $((kib / 1024))"
}

auc() { "$py" -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))$1['roc_auc_score_test'])" "$work/out.json"; }

rows=()
run_pair() {
  local name="$1" task="$2" csv="$3" label="$4" features="$5" warm="${6:-}"
  if [ -n "$warm" ]; then
    # One unmeasured run of each first, so that neither side is timed loading itself from a cold disk.
    GROUNDS_HOME="$work/home" "$GROUNDS" train attached "$task" --json --quiet --force > /dev/null 2>&1
    "$py" bench/sklearn_pipeline.py "$csv" "$label" "$features" > /dev/null 2>&1
  fi
  echo "bench: $name with grounds" >&2
  read -r g_s g_m < <(GROUNDS_HOME="$work/home" measure "$GROUNDS" train attached "$task" --json --quiet --force)
  local g_auc; g_auc="$(auc "['metrics']")"
  echo "bench: $name with scikit-learn" >&2
  read -r s_s s_m < <(measure "$py" bench/sklearn_pipeline.py "$csv" "$label" "$features")
  local s_auc; s_auc="$(auc "")"
  local speedup; speedup="$("$py" -c "print('%.1f' % ($s_s / max($g_s, 0.01)))")"
  rows+=("| $name | grounds train attached | $g_s | $g_m | $g_auc | ${speedup}× |")
  rows+=("| $name | scikit-learn | $s_s | $s_m | $s_auc | 1.0× |")
}

run_pair "titanic (891 × 7)" fixtures/titanic/task.toml fixtures/titanic/titanic.csv Survived "Pclass,Sex,Age,SibSp,Parch,Fare,Embarked" warm
run_pair "synthetic ($ROWS × 20)" "$work/synthetic/task.toml" "$work/synthetic/synthetic.csv" label "$synthetic_features"

# Overhead of the modes on the same task: wall time minus the job's own work (the builtin's "done in" time).
job_seconds() {
  "$py" - "$work/out.json" <<'PY'
import json, re, sys, zipfile
result = json.load(open(sys.argv[1]))["result"]
logs = zipfile.ZipFile(result).read("logs.txt").decode()
print(re.findall(r"done in ([0-9.]+)s", logs)[-1])
PY
}
overhead_rows=()
overhead() {
  local label="$1"; shift
  read -r wall _ < <(GROUNDS_HOME="$work/home" measure "$GROUNDS" "$@" --json --quiet --force)
  local own; own="$(job_seconds)"
  overhead_rows+=("| $label | $wall | $own | $("$py" -c "print('%.2f' % ($wall - $own))") |")
}
titanic=fixtures/titanic/task.toml
if docker info >/dev/null 2>&1; then
  echo "bench: overhead of train attached and train local" >&2
  image="$("$GROUNDS" train local "$titanic" --dry-run | "$py" -c 'import json,sys; print(json.load(sys.stdin)["image"]["tag"])')"
  docker rmi -f "$image" >/dev/null 2>&1 || true
  overhead "train attached" train attached "$titanic"
  overhead "train local, cold (image built)" train local "$titanic"
  overhead "train local, warm (image reused)" train local "$titanic"
  docker rmi -f "$image" >/dev/null 2>&1 || true
fi

# What the channels' private, writable copies cost: the same trivial job on a 1 GiB channel and on a
# 1 KiB one. The difference is reading the data for the fingerprint plus copying it (once attached,
# once per host in containers).
echo "bench: channel copies (1 GiB)" >&2
mkdir -p "$work/channel/big" "$work/channel/small" "$work/channel/src"
head -c $((1 << 30)) /dev/urandom > "$work/channel/big/data.bin"
head -c 1024 /dev/urandom > "$work/channel/small/data.bin"
printf '#!/bin/sh\necho "###METRIC###done:1###"\n' > "$work/channel/src/train.sh"
base=grounds-test/python:bookworm
for size in big small; do
  cat > "$work/channel/$size.toml" <<TOML
[task]
name = "channel"
[task.command]
source = "src"
run = ["sh", "train.sh"]
[channels]
training = "$size"
[container]
base_image = "$base"
TOML
done
channel_rows=()
channel_cost() {
  local mode="$1"
  read -r big _ < <(GROUNDS_HOME="$work/home" measure "$GROUNDS" train "$mode" "$work/channel/big.toml" --json --quiet --force)
  read -r small _ < <(GROUNDS_HOME="$work/home" measure "$GROUNDS" train "$mode" "$work/channel/small.toml" --json --quiet --force)
  channel_rows+=("| train $mode | $big | $small | $("$py" -c "print('%.2f' % ($big - $small))") |")
}
# Warm the page cache and (for local) the image first: both tasks have the same name, package and image.
GROUNDS_HOME="$work/home" "$GROUNDS" train attached "$work/channel/big.toml" --quiet --force > /dev/null 2>&1 || true
channel_cost attached
if docker info >/dev/null 2>&1 && docker image inspect "$base" >/dev/null 2>&1; then
  GROUNDS_HOME="$work/home" "$GROUNDS" train local "$work/channel/big.toml" --quiet --force > /dev/null 2>&1 || true
  channel_cost local
fi
fs_type="$(df -T "${TMPDIR:-/tmp}" | awk 'NR == 2 {print $2}')"

sklearn_version="$("$py" -c 'import sklearn; print(sklearn.__version__)')"
{
  echo "# Benchmarks"
  echo
  echo "Measured by \`make bench\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo);"
  echo "grounds $("$GROUNDS" --version | cut -d' ' -f2) (release build) against scikit-learn $sklearn_version."
  echo
  echo "## Builtin single-frame task against scikit-learn"
  echo
  echo "Both run the same pipeline: mean-impute and standardise numbers, most-frequent-impute and one-hot"
  echo "categories, logistic regression (C = 1), 5 shuffled folds with train and test ROC AUC, then a refit on"
  echo "all rows. grounds is measured end to end (\`grounds train attached\`: packaging, the job, writing"
  echo "model.json, result_df.parquet and the result zip); scikit-learn from reading the CSV to the refit."
  echo "Peak memory is the largest resident set of one process (GNU time). Titanic is measured after one"
  echo "unmeasured run of each side (warm disk cache); the large frame is measured cold."
  echo
  echo "| data | run | wall s | peak MiB | ROC AUC test | speed-up |"
  echo "|---|---|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  if [ ${#overhead_rows[@]} -gt 0 ]; then
    echo
    echo "## Overhead of the modes"
    echo
    echo "The titanic task end to end in each mode; the job's own work is the time the builtin reports"
    echo "(\"done in\"), the overhead everything else: packaging, the entry, the image (cold: built from"
    echo "scratch with the release binary as entry; warm: reused by its content tag), containers, logs and"
    echo "the result zip."
    echo
    echo "| mode | wall s | job's own work s | overhead s |"
    echo "|---|---:|---:|---:|"
    printf '%s\n' "${overhead_rows[@]}"
  fi
  echo
  echo "## Writable channels"
  echo
  echo "Every job gets its own writable copy of each channel (a job may unpack into it; the user's files"
  echo "are never touched). What that costs on a 1 GiB channel of random bytes, against the same trivial"
  echo "job on a 1 KiB channel; the difference is reading the data for the fingerprint and copying it,"
  echo "on $fs_type (a file system with reflinks, btrfs or XFS, makes the copy itself nearly free)."
  echo
  echo "| mode | 1 GiB channel, wall s | 1 KiB channel, wall s | cost of 1 GiB, s |"
  echo "|---|---:|---:|---:|"
  printf '%s\n' "${channel_rows[@]}"
} > bench/RESULTS.md
cat bench/RESULTS.md
