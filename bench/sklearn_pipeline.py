"""The same single-frame pipeline as grounds' builtin, in scikit-learn, for `make bench`.

Mean-impute + standardise numbers, most-frequent-impute + one-hot categories (unknown ignored),
LogisticRegression(max_iter=1000), 5 shuffled folds with train and test ROC AUC, then a refit on all
rows, as grounds does. Prints one JSON line with the mean AUCs. Given FOLDS.npy (bench/folds.py), the
folds are grounds' own, so that the two sides' AUCs compare to the digit.
Usage: python sklearn_pipeline.py DATA.csv LABEL FEATURE,FEATURE,... [FOLDS.npy]
"""
import json
import sys

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, PredefinedSplit, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

path, label, features = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
frame = pd.read_csv(path, usecols=[label, *features])
x, y = frame[features], frame[label]
numeric = [c for c in features if pd.api.types.is_numeric_dtype(x[c])]
categorical = [c for c in features if c not in numeric]
pre = ColumnTransformer([
    ("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), numeric),
    ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), categorical),
])
pipeline = make_pipeline(pre, LogisticRegression(max_iter=1000))
if len(sys.argv) > 4:
    import numpy as np
    cv = PredefinedSplit(np.load(sys.argv[4]))
else:
    cv = KFold(5, shuffle=True, random_state=42)
scores = cross_validate(pipeline, x, y, cv=cv, scoring="roc_auc", return_train_score=True)
pipeline.fit(x, y)
print(json.dumps({"roc_auc_score_test": scores["test_score"].mean(), "roc_auc_score_train": scores["train_score"].mean()}))
