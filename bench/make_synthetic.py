"""Writes a synthetic binary-classification frame: N rows, 16 numeric and 4 categorical features.

The label follows a logistic model of the features, so a logistic regression can learn it; about 5%
of the numeric values and 2% of the categorical ones are missing, to exercise the imputers.
Usage: python make_synthetic.py ROWS OUT.csv
"""
import sys

import numpy as np
import pandas as pd

rows, out = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(20261122)
frame = {}
logit = np.full(rows, -0.3)
for j in range(16):
    values = rng.normal(loc=j % 3, scale=1.0 + j % 4, size=rows)
    logit += (0.6 if j % 2 else -0.4) * (values - j % 3) / (1.0 + j % 4) / (1 + j // 4)
    values[rng.random(rows) < 0.05] = np.nan
    frame[f"n{j}"] = values
for j in range(4):
    levels = np.array([f"c{j}_{k}" for k in range(3 + j)])
    codes = rng.integers(0, len(levels), size=rows)
    logit += np.linspace(-0.8, 0.8, len(levels))[codes]
    values = levels[codes].astype(object)
    values[rng.random(rows) < 0.02] = None
    frame[f"k{j}"] = values
frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
pd.DataFrame(frame).to_csv(out, index=False, float_format="%.6g")
