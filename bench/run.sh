#!/usr/bin/env bash
# make bench: grounds against its anchors, side by side in one run, written to bench/RESULTS.md.
#   1. The builtin single-frame task against the same pipeline in scikit-learn, on titanic, a numeric
#      frame and a mixed frame (numbers of many scales, string categories, missing values), at
#      100k, 300k, 1M and 3M rows: wall time, peak memory, ROC AUC; runs alternate grounds, scikit-learn.
#   2. `grounds train local` against a bare `docker run` of the same image on the same /opt/ml tree.
#   3. The images of a builtin and a command task, this build's against the anchor's (grounds before the
#      workspace, built by bench/anchor.sh): sizes, a first `train local`, a push (bench/images.sh).
#   4. The edit-run loop: a run after a one-line code change, against a bare `docker run` with the code
#      mounted (bench/editloop.sh; its remote half when run under tests/services.sh).
#   5. What a run costs on a 1 GiB channel the first time and when it is unchanged.
#   Between 1 and 2: designs of thousands of one-hot columns (titanic with its names and tickets, a
#   200k-row frame with a 3,000-level column).
# BENCH_SIZES and BENCH_PAIRS (alternating pairs per size up to 1M rows; 3M rows get one) shorten it.
set -euo pipefail
cd "$(dirname "$0")/.."
GROUNDS="$(realpath "${GROUNDS:?set GROUNDS to the release binary}")"
SIZES="${BENCH_SIZES:-100000 300000 1000000 3000000}"
PAIRS="${BENCH_PAIRS:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GROUNDS_HOME="$work/home"
venv=bench/.venv

if [ ! -x "$venv/bin/python" ]; then
  echo "bench: installing scikit-learn into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r bench/requirements.txt
fi
py="$venv/bin/python"

# Runs a command under GNU time; prints "seconds peak_mib" and leaves its stdout in $work/out.json.
measure() {
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/out.json" 2> "$work/err.txt" || { cat "$work/err.txt" >&2; exit 1; }
  read -r seconds kib < "$work/time.txt"
  echo "$seconds $((kib / 1024))"
}
auc() { "$py" -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))$1['roc_auc_score_test'])" "$work/out.json"; }
# median / min / max of numbers given as arguments
stats() { "$py" -c "import statistics,sys; v=sorted(map(float,sys.argv[1:])); print('%.2f %.2f %.2f' % (statistics.median(v), v[0], v[-1]))" "$@"; }

task_file() { # task_file DIR CSV
  cat > "$1/task.toml" <<TOML
[task]
name = "bench"
[task.builtin]
kind = "single-frame"
label = "label"
model = "logistic-regression"
folds = 5
[channels]
training = "$(basename "$2")"
[hyperparameters]
max_iter = 1000
TOML
}

rows_md=()
compare() { # compare NAME ROWS TASK CSV LABEL FEATURES PAIRS
  local name="$1" rows="$2" task="$3" csv="$4" label="$5" features="$6" pairs="$7"
  # scikit-learn scores grounds' own folds (computed here, outside both sides' time).
  "$py" bench/folds.py "$rows" "$work/folds.npy"
  local g_times=() s_times=() g_mem=0 s_mem=0 g_auc s_auc ratios=()
  for ((k = 0; k < pairs; k++)); do
    echo "bench: $name, $rows rows, pair $((k + 1)) of $pairs" >&2
    read -r g_s g_m < <(measure "$GROUNDS" train attached "$task" --json --quiet --force)
    g_auc="$(auc "['metrics']")"
    read -r s_s s_m < <(measure "$py" bench/sklearn_pipeline.py "$csv" "$label" "$features" "$work/folds.npy")
    s_auc="$(auc "")"
    g_times+=("$g_s"); s_times+=("$s_s")
    ratios+=("$("$py" -c "print($s_s / max($g_s, 0.01))")")
    g_mem=$((g_m > g_mem ? g_m : g_mem)); s_mem=$((s_m > s_mem ? s_m : s_mem))
  done
  read -r g_med g_min g_max < <(stats "${g_times[@]}")
  read -r s_med s_min s_max < <(stats "${s_times[@]}")
  read -r r_med _ _ < <(stats "${ratios[@]}")
  local per_row; per_row="$("$py" -c "print('%.2f' % ($g_med / $rows * 1e6))")"
  rows_md+=("| $name | $rows | $g_med ($g_min–$g_max) | $per_row | $g_mem | $g_auc | $s_med ($s_min–$s_max) | $s_mem | $s_auc | ${r_med}× |")
}

features_of() { head -1 "$1" | tr -d '\r' | tr ',' '\n' | grep -v "^$2\$" | paste -sd, -; }

# Titanic first (small: warm both sides once, as neither should be timed loading from a cold disk).
"$GROUNDS" train attached fixtures/titanic/task.toml --quiet --force > /dev/null 2>&1
titanic_features="Pclass,Sex,Age,SibSp,Parch,Fare,Embarked"
"$py" bench/sklearn_pipeline.py fixtures/titanic/titanic.csv Survived "$titanic_features" > /dev/null 2>&1
compare "titanic" 891 fixtures/titanic/task.toml fixtures/titanic/titanic.csv Survived "$titanic_features" "$PAIRS"

for frame in synthetic mixed; do
  for rows in $SIZES; do
    dir="$work/$frame-$rows"
    mkdir -p "$dir"
    echo "bench: writing the $frame frame ($rows rows)" >&2
    "$py" "bench/make_$frame.py" "$rows" "$dir/$frame.csv"
    task_file "$dir" "$dir/$frame.csv"
    pairs="$PAIRS"; [ "$rows" -gt 1000000 ] && pairs=1
    compare "$frame" "$rows" "$dir/task.toml" "$dir/$frame.csv" label "$(features_of "$dir/$frame.csv" label)" "$pairs"
    rm -rf "$dir" "$GROUNDS_HOME/results"
  done
done

# Categories of many levels: titanic with Name, Ticket and Cabin (1,729 columns), and a wide frame of
# 200k rows with a 3,000-level column (BENCH_WIDE_ROWS), both past the width where grounds stops forming
# the Hessian.
mkdir -p "$work/titanic-wide"
cp fixtures/titanic/titanic.csv "$work/titanic-wide/"
wide_features="$titanic_features,Name,Ticket,Cabin"
sed "s/^features = .*/features = [\"${wide_features//,/\", \"}\"]/" fixtures/titanic/task.toml > "$work/titanic-wide/task.toml"
compare "titanic, with Name, Ticket, Cabin" 891 "$work/titanic-wide/task.toml" "$work/titanic-wide/titanic.csv" Survived "$wide_features" "$PAIRS"
wide_rows="${BENCH_WIDE_ROWS:-200000}"
dir="$work/wide-$wide_rows"
mkdir -p "$dir"
echo "bench: writing the wide frame ($wide_rows rows)" >&2
"$py" bench/make_wide.py "$wide_rows" "$dir/wide.csv"
task_file "$dir" "$dir/wide.csv"
compare "wide (3,000 levels)" "$wide_rows" "$dir/task.toml" "$dir/wide.csv" label "$(features_of "$dir/wide.csv" label)" "$PAIRS"
rm -rf "$dir" "$GROUNDS_HOME/results"

# train local against a bare docker run of the same image on the same /opt/ml tree, alternating.
overhead_md=()
if docker info >/dev/null 2>&1; then
  echo "bench: train local against a bare docker run" >&2
  titanic=fixtures/titanic/task.toml
  image="$("$GROUNDS" train local "$titanic" --dry-run | "$py" -c 'import json,sys; print(json.load(sys.stdin)["image"]["tag"])')"
  "$GROUNDS" train local "$titanic" --quiet --force --json > "$work/built.json" 2>/dev/null # builds the image once
  tree="$work/bare/ml"
  mkdir -p "$tree/input/config" "$tree/input/data/training" "$tree/input/data/grounds_package" "$tree/model" "$tree/output"
  cp fixtures/titanic/titanic.csv "$tree/input/data/training/"
  # The image holds no code: the package goes in as its channel, as grounds lays it out.
  "$py" -c 'import json, sys, zipfile; r = json.load(open(sys.argv[1]))["result"]; open(sys.argv[2], "wb").write(zipfile.ZipFile(r).read("package.zip"))' \
    "$work/built.json" "$tree/input/data/grounds_package/package.zip"
  echo '{"max_iter":"1000"}' > "$tree/input/config/hyperparameters.json"
  echo '{"current_host":"algo-1","hosts":["algo-1"],"network_interface_name":"eth0"}' > "$tree/input/config/resourceconfig.json"
  echo '{"training":{"TrainingInputMode":"File","S3DistributionType":"FullyReplicated","RecordWrapperType":"None"}}' > "$tree/input/config/inputdataconfig.json"
  g_times=(); d_times=()
  for ((k = 0; k < 10; k++)); do
    read -r g _ < <(measure "$GROUNDS" train local "$titanic" --json --quiet --force)
    read -r d _ < <(measure docker run --rm -v "$tree:/opt/ml" -e TRAINING_JOB_NAME=bare "$image" train)
    g_times+=("$g"); d_times+=("$d")
  done
  read -r g_med g_min g_max < <(stats "${g_times[@]}")
  read -r d_med d_min d_max < <(stats "${d_times[@]}")
  overhead_md+=("| grounds train local (titanic, image reused) | $g_med | $g_min–$g_max |")
  overhead_md+=("| docker run --rm -v TREE:/opt/ml IMAGE train | $d_med | $d_min–$d_max |")
  overhead_md+=("| difference of the medians | $("$py" -c "print('%.3f' % ($g_med - $d_med))") | |")
fi

# The edit-run loop (bench/editloop.sh): local always; remote on the stand-in when tests/services.sh runs
# this script (make bench does: `tests/services.sh bench/run.sh`), against the build before the package
# left the image (BENCH_EDIT_ANCHOR_REV). BENCH_EDIT=0 leaves the section out.
editloop_md=""
if [ "${BENCH_EDIT:-1}" != 0 ] && docker info >/dev/null 2>&1; then
  edit_anchor=""
  if [ -n "${GROUNDS_TEST_SAGEMAKER:-}" ]; then
    edit_anchor="$(BENCH_ANCHOR_REV="${BENCH_EDIT_ANCHOR_REV:-03092e0}" bench/anchor.sh)"
  fi
  editloop_md="$(GROUNDS="$GROUNDS" ANCHOR="$edit_anchor" ANCHOR_NAME="commit ${BENCH_EDIT_ANCHOR_REV:-03092e0}" bench/editloop.sh)"
fi

# Images: this build's against grounds before the workspace (bench/anchor.sh builds it once, in release).
# BENCH_IMAGES=0 leaves the section out.
images_md=""
if [ "${BENCH_IMAGES:-1}" != 0 ] && docker info >/dev/null 2>&1; then
  anchor="$(bench/anchor.sh)"
  images_md="$(GROUNDS="$GROUNDS" ANCHOR="$anchor" bench/images.sh)"
fi

# A 1 GiB channel: the first run reads every byte for the fingerprint; an unchanged re-run stats each
# file. Measured on --dry-run, which computes the fingerprint and stops before running anything.
echo "bench: a 1 GiB channel, first run and unchanged re-run" >&2
mkdir -p "$work/channel/data" "$work/channel/src"
for k in $(seq 1 16); do head -c $((64 << 20)) /dev/urandom > "$work/channel/data/part-$k.bin"; done
printf '#!/bin/sh\necho "###METRIC###done:1###"\n' > "$work/channel/src/train.sh"
cat > "$work/channel/task.toml" <<TOML
[task]
name = "channel"
[task.command]
source = "src"
run = ["sh", "train.sh"]
[channels]
training = "data"
TOML
sleep 3 # older than the two-second window in which a changed file is not remembered
read -r first _ < <(measure "$GROUNDS" train attached "$work/channel/task.toml" --dry-run)
read -r again _ < <(measure "$GROUNDS" train attached "$work/channel/task.toml" --dry-run)
read -r run_again _ < <(measure "$GROUNDS" train attached "$work/channel/task.toml" --quiet --force)
fs_type="$(df -T "${TMPDIR:-/tmp}" | awk 'NR == 2 {print $2}')"

sklearn_version="$("$py" -c 'import sklearn; print(sklearn.__version__)')"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
{
  echo "# Benchmarks"
  echo
  echo "Measured by \`make bench\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $load at the end;"
  echo "grounds $("$GROUNDS" --version | cut -d' ' -f2) (release build) against scikit-learn $sklearn_version. Each line alternates the two"
  echo "sides ($PAIRS pairs up to 1M rows, one pair at 3M); times are medians with the range over the pairs, so"
  echo "the spread shows this shared machine's noise; the speed-up is the median of the pairs' ratios."
  echo
  echo "## Builtin single-frame task against scikit-learn"
  echo
  echo "Both run the same pipeline: mean-impute and standardise numbers, most-frequent-impute and one-hot"
  echo "categories, logistic regression (C = 1), 5 shuffled folds with train and test ROC AUC, then a refit on"
  echo "all rows. grounds is measured end to end (\`grounds train attached\`: packaging, the job, writing"
  echo "model.json, result_df.parquet with every row of every split, and the result zip); scikit-learn from"
  echo "reading the CSV to the refit, on grounds' folds (bench/folds.py), so the AUCs compare to the digit."
  echo "Peak memory is the largest resident set of one process (GNU time)."
  echo "\`synthetic\` has 16 numeric and 4 string columns of a few levels (bench/make_synthetic.py); \`mixed\`"
  echo "has numbers of very different scales (amounts, counts, time stamps) and string columns of 4 to 150"
  echo "levels with rare ones, values missing in both (bench/make_mixed.py). \`titanic, with Name, Ticket,"
  echo "Cabin\` and \`wide\` (6 numbers, a string column of 3,000 Zipf-distributed levels, bench/make_wide.py)"
  echo "are designs of thousands of one-hot columns, whose Newton steps grounds solves by conjugate gradients."
  echo
  echo "| data | rows | grounds s | µs per row | grounds peak MiB | grounds AUC | scikit-learn s | scikit-learn peak MiB | scikit-learn AUC | speed-up |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows_md[@]}"
  if [ ${#overhead_md[@]} -gt 0 ]; then
    echo
    echo "## train local against a bare docker run"
    echo
    echo "The titanic task with its image already built, against \`docker run\` of the same image on an"
    echo "/opt/ml tree laid out as grounds lays it out; 10 alternating pairs, wall seconds."
    echo
    echo "| run | median s | range s |"
    echo "|---|---:|---:|"
    printf '%s\n' "${overhead_md[@]}"
  fi
  if [ -n "$editloop_md" ]; then
    echo
    echo "$editloop_md"
  fi
  if [ -n "$images_md" ]; then
    echo
    echo "$images_md"
  fi
  echo
  echo "## A large channel"
  echo
  echo "A channel of 1 GiB (16 files of 64 MiB) on $fs_type. The fingerprint hashes every byte the first time;"
  echo "the files' hashes are then remembered by their file system stamp (device, inode, size, modification"
  echo "and change time) under \$GROUNDS_HOME/cache/hashes, so an unchanged re-run costs a stat per file."
  echo
  echo "| run | wall s |"
  echo "|---|---:|"
  echo "| first \`--dry-run\` (every byte hashed) | $first |"
  echo "| unchanged re-run, \`--dry-run\` | $again |"
  echo "| unchanged re-run of the whole (trivial) job, attached: the job's private copy of 1 GiB included | $run_again |"
} > bench/RESULTS.md
cat bench/RESULTS.md
