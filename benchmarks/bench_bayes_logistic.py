"""DPBayesianLogisticRegression on UCI Adult at epsilon = 1, against IBM diffprivlib and the non-private ceiling.

Features use PUBLIC metadata only: the categories listed in ``adult.names`` (one-hot; ``?`` and
unlisted values encode as all zeros) and documented public bounds for the continuous columns
(age 17-90, fnlwgt 0-1.5e6, education-num 1-16, capital-gain 0-99,999 and capital-loss 0-4,356 on a
log1p scale, hours-per-week 1-99), each scaled to [0, 1] and clipped.  Every row then has
squared norm <= 6 + 8 = 14, and all rows are divided by sqrt(14), so ||x|| <= 1 (public bound,
no clipping happens).  Same matrices for every method; train on ``adult_train.csv`` (32,561 rows),
test on ``adult_test.csv`` (16,281 rows); 5 seeds, medians reported.

diffprivlib 0.6.6 needs scikit-learn < 1.8, so it runs in its own environment
(``/work/.venv-peers``, see ../shared/PEERS.md) through ``bench_bayes_diffprivlib.py``, which
reads the matrices saved here and writes JSON.

Run: ``nice -n 10 python benchmarks/bench_bayes_logistic.py`` (writes benchmarks/_out/bayes_adult.json).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from skdpgen import DPBayesianLogisticRegression

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "adult"
OUT = HERE / "_out"
PEERS_PYTHON = pathlib.Path("/work/.venv-peers/bin/python")

BOUNDS = {"age": (17, 90, False), "fnlwgt": (0, 1.5e6, False), "education-num": (1, 16, False),
          "capital-gain": (0, 99999, True), "capital-loss": (0, 4356, True), "hours-per-week": (1, 99, False)}


def public_categories(path: pathlib.Path = DATA / "adult.names") -> dict[str, list[str]]:
    cats = {}
    for line in path.read_text().splitlines():
        if ":" in line and not line.startswith("|") and "continuous" not in line:
            name, values = line.split(":", 1)
            cats[name.strip()] = [v.strip() for v in values.strip().rstrip(".").split(",")]
    return cats


def encode(frame: pd.DataFrame, cats: dict[str, list[str]]) -> np.ndarray:
    cols = []
    for name, (lo, hi, log) in BOUNDS.items():
        v = frame[name].astype(float).to_numpy()
        if log:
            v, lo, hi = np.log1p(v), math.log1p(lo), math.log1p(hi)
        cols.append(np.clip((v - lo) / (hi - lo), 0.0, 1.0)[:, None])
    for name, values in cats.items():
        col = frame[name].astype(str).str.strip().to_numpy()
        cols.append((col[:, None] == np.asarray(values)[None, :]).astype(float))
    X = np.hstack(cols) / math.sqrt(len(BOUNDS) + len(cats))
    assert np.linalg.norm(X, axis=1).max() <= 1 + 1e-12
    return X


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cats = public_categories()
    train = pd.read_csv(DATA / "adult_train.csv", skipinitialspace=True)
    test = pd.read_csv(DATA / "adult_test.csv", skipinitialspace=True)
    y_tr = train["income"].astype(str).str.contains(">50K").astype(int).to_numpy()
    y_te = test["income"].astype(str).str.contains(">50K").astype(int).to_numpy()
    return encode(train, cats), y_tr, encode(test, cats), y_te


def evaluate(est, X_te, y_te) -> dict:
    p = est.predict_proba(X_te)[:, 1]
    return {"accuracy": float(accuracy_score(y_te, est.predict(X_te))), "roc_auc": float(roc_auc_score(y_te, p))}


def main(seeds=range(5)) -> dict:
    X_tr, y_tr, X_te, y_te = load()
    OUT.mkdir(exist_ok=True)
    np.savez(OUT / "bayes_adult_features.npz", X_tr=X_tr, y_tr=y_tr, X_te=X_te, y_te=y_te)
    print("features", X_tr.shape, X_te.shape, flush=True)
    configs = {
        "skdpgen VIPS batch, 5 it (default), eps=1": dict(epsilon=1.0, max_iter=5),
        "skdpgen VIPS batch, 3 it, eps=1": dict(epsilon=1.0, max_iter=3),
        "skdpgen VIPS batch, 10 it, eps=1": dict(epsilon=1.0, max_iter=10),
        "skdpgen VIPS batch, 5 it, noise_floor=0 (plain PSD projection), eps=1": dict(epsilon=1.0, max_iter=5,
                                                                                     noise_floor=0.0),
        "skdpgen VIPS online (q=0.01, 3 passes), eps=1": dict(epsilon=1.0, learning_method="online",
                                                              sample_rate=0.01, max_iter=3),
        "skdpgen VB eps=inf (non-private)": dict(epsilon=float("inf"), max_iter=30),
    }
    results = {}
    for label, kw in configs.items():
        rows = []
        for seed in seeds:
            t0 = time.perf_counter()
            est = DPBayesianLogisticRegression(random_state=seed, classes=[0, 1], **kw).fit(X_tr, y_tr)
            rows.append({**evaluate(est, X_te, y_te), "fit_s": time.perf_counter() - t0,
                         "epsilon_spent": est.privacy_report_["epsilon"]})
            if math.isinf(kw["epsilon"]):
                break  # deterministic
        results[label] = _summary(rows)
        print(label, results[label], flush=True)
    ref = LogisticRegression(C=1.0, max_iter=2000).fit(X_tr, y_tr)
    results["sklearn LogisticRegression (non-private)"] = _summary([evaluate(ref, X_te, y_te)])
    print(results["sklearn LogisticRegression (non-private)"], flush=True)
    if PEERS_PYTHON.exists():
        out = OUT / "bayes_adult_diffprivlib.json"
        script = HERE / "bench_bayes_diffprivlib.py"
        subprocess.run([str(PEERS_PYTHON), str(script), str(OUT / "bayes_adult_features.npz"), str(out),
                        str(len(list(seeds)))], check=True)
        for label, rows in json.loads(out.read_text()).items():
            results[label] = _summary(rows)
            print(label, results[label], flush=True)
    else:
        print("diffprivlib environment not found: skipped", file=sys.stderr)
    return results


def _summary(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if isinstance(rows[0][k], float | int)]
    return {**{f"median_{k}": float(np.median([r[k] for r in rows])) for k in keys}, "n_seeds": len(rows),
            "rows": rows}


if __name__ == "__main__":
    # recorded figures reproduce bit for bit: the privacy noise follows the seeds (public data; never
    # for a real release, see skdpgen.set_config); worker processes inherit the variable
    os.environ.setdefault("SKDPGEN_REPRODUCIBLE_NOISE", "1")
    res = main()
    (OUT / "bayes_adult.json").write_text(json.dumps(res, indent=1))
