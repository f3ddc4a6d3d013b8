"""Writes a wide frame: N rows, 6 numeric columns (one with missing values), an `id` column of 3,000
string levels with Zipf-like frequencies (a few common, most in a handful of rows: user ids, products,
zip codes) and a small string column. One-hot, the design has over 3,000 columns: too wide for a formed
Hessian, so grounds solves its Newton steps by conjugate gradients (see the README's "Many levels").
Usage: python make_wide.py ROWS OUT.csv
"""
import sys

import numpy as np
import pandas as pd

rows, out = int(sys.argv[1]), sys.argv[2]
levels = 3000
rng = np.random.default_rng(20261202)
x = rng.normal(size=(rows, 6))
weights = 1.0 / np.arange(1, levels + 1) ** 1.1
codes = rng.choice(levels, size=rows, p=weights / weights.sum())
effects = rng.normal(scale=0.8, size=levels)
small = rng.choice(5, size=rows)
logit = x @ np.array([0.8, -0.5, 0.3, 0.0, 0.2, -0.1]) + effects[codes] + 0.2 * small
frame = pd.DataFrame(x, columns=[f"n{k}" for k in range(6)])
frame.loc[rng.random(rows) < 0.05, "n1"] = np.nan
frame["id"] = np.array([f"u{k:05d}" for k in range(levels)], dtype=object)[codes]
frame["kind"] = np.array(list("abcde"), dtype=object)[small]
frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
frame.to_csv(out, index=False, float_format="%.8g")
