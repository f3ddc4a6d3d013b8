#!/usr/bin/env bash
# The anchor of the image benchmark: grounds as it was before the workspace (one binary, copied whole into
# every image as its entry), built in release from its commit into bench/.anchor (made once, then reused).
# Prints the path of its binary. BENCH_ANCHOR_REV names another commit.
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${BENCH_ANCHOR_REV:-22875db}"
dir="bench/.anchor/$rev"
bin="$dir/target/x86_64-unknown-linux-gnu/release/grounds"
if [ ! -x "$bin" ]; then
  if ! git cat-file -e "$rev^{commit}" 2>/dev/null; then
    echo "bench: the anchor commit $rev is not in this clone (a shallow clone? git fetch --unshallow)" >&2
    exit 1
  fi
  echo "bench: building the anchor, grounds at $rev, in release (once; about 10 minutes on 2 cores)" >&2
  rm -rf "$dir/src"
  mkdir -p "$dir"
  mkdir -p "$dir/src"
  git archive "$rev" | tar -x -C "$dir/src"
  (cd "$dir/src" && CARGO_TARGET_DIR="$PWD/../target" cargo build --release --quiet) >&2
fi
realpath "$bin"
