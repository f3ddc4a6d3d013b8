"""Writes a mixed frame as people train on: N rows, 16 numeric columns of very different scales and 4
string columns with skewed categories, values missing in both.

Numbers: amounts (log-normal, in the thousands), counts (Poisson), a time stamp (around 1.7e9 seconds),
ratios, and plain normals, 3-25% missing. Strings: 4, 12, 40 and 150 levels with Zipf-like frequencies,
so that the last ones have levels seen in a handful of rows (rare levels land in some folds' training
rows and not in others), 1-10% missing. The label follows a logistic model of a subset of them.
Usage: python make_mixed.py ROWS OUT.csv
"""
import sys

import numpy as np
import pandas as pd

rows, out = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(20261124)
frame = {}
logit = np.full(rows, -1.0)
for j in range(16):
    kind = j % 4
    if kind == 0:
        values = rng.lognormal(mean=8.0, sigma=1.0, size=rows)
        effect = 0.4 * (np.log(values) - 8.0)
    elif kind == 1:
        values = rng.poisson(lam=1 + j, size=rows).astype(float)
        effect = -0.3 * (values - (1 + j)) / np.sqrt(1 + j)
    elif kind == 2:
        values = 1.7e9 + rng.uniform(0, 3.0e7, size=rows)
        effect = 0.2 * (values - 1.715e9) / 8.7e6
    else:
        values = rng.normal(loc=j, scale=0.5 + j / 4, size=rows)
        effect = (0.5 if j % 8 == 3 else -0.2) * (values - j) / (0.5 + j / 4)
    logit += effect / (1 + j // 8)
    values[rng.random(rows) < 0.03 + 0.22 * (j % 5) / 4] = np.nan
    frame[f"n{j}"] = values
for j, levels in enumerate([4, 12, 40, 150]):
    weights = 1.0 / np.arange(1, levels + 1) ** 1.3
    codes = rng.choice(levels, size=rows, p=weights / weights.sum())
    effects = rng.normal(scale=0.6, size=levels)
    logit += effects[codes]
    names = np.array([f"{'abcd'[j]}{k:03d}" for k in range(levels)], dtype=object)
    values = names[codes]
    values[rng.random(rows) < [0.01, 0.04, 0.07, 0.10][j]] = None
    frame[f"s{j}"] = values
frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
pd.DataFrame(frame).to_csv(out, index=False, float_format="%.8g")
