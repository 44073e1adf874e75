"""diffprivlib's LogisticRegression on the Adult matrices of bench_bayes_logistic.py (run in /work/.venv-peers).

Usage: ``/work/.venv-peers/bin/python benchmarks/bench_bayes_diffprivlib.py FEATURES.npz OUT.json N_SEEDS``.
Same features (rows with L2 norm <= 1, so ``data_norm=1.0`` is a true public bound), epsilon = 1.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

import numpy as np
from diffprivlib.models import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score


def main(features: str, out: str, n_seeds: int) -> None:
    d = np.load(features)
    rows = []
    for seed in range(n_seeds):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = LogisticRegression(epsilon=1.0, data_norm=1.0, random_state=seed, max_iter=1000).fit(d["X_tr"],
                                                                                                      d["y_tr"])
        p = clf.predict_proba(d["X_te"])[:, 1]
        rows.append({"accuracy": float(accuracy_score(d["y_te"], clf.predict(d["X_te"]))),
                     "roc_auc": float(roc_auc_score(d["y_te"], p)), "fit_s": time.perf_counter() - t0})
    with open(out, "w") as f:
        json.dump({"diffprivlib 0.6.6 LogisticRegression, eps=1 (data_norm=1)": rows}, f, indent=1)


if __name__ == "__main__":
    # recorded figures reproduce bit for bit: the privacy noise follows the seeds (public data; never
    # for a real release, see skdpgen.set_config); worker processes inherit the variable
    os.environ.setdefault("SKDPGEN_REPRODUCIBLE_NOISE", "1")
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
