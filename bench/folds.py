"""Writes grounds' fold of every row (the builtin's SplitMix64 shuffle, seed 42, 5 folds) as a .npy file,
so that scikit-learn's side of `make bench` scores the same folds and the AUCs compare to the digit.
Run before the timed runs; not part of either side's time.
Usage: python folds.py ROWS OUT.npy [SEED] [FOLDS]
"""
import sys

import numpy as np

rows, out = int(sys.argv[1]), sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 42
k = int(sys.argv[4]) if len(sys.argv) > 4 else 5
mask = (1 << 64) - 1
state = seed


def next_value():
    global state
    state = (state + 0x9E3779B97F4A7C15) & mask
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


order = list(range(rows))
for i in range(rows - 1, 0, -1):
    j = next_value() % (i + 1)
    order[i], order[j] = order[j], order[i]
fold = np.empty(rows, dtype=np.int32)
start = 0
for f in range(k):
    size = rows // k + (1 if f < rows % k else 0)
    fold[np.array(order[start:start + size], dtype=np.int64)] = f
    start += size
np.save(out, fold)
