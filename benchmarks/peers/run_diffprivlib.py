"""A class-conditional independent-marginals baseline built from IBM diffprivlib's DP histogram.

diffprivlib (0.6.6) has no synthesizer; where it fits this benchmark is its Laplace histogram
(:func:`diffprivlib.tools.histogram`).  This script builds the simplest DP synthesizer from it
("naive Bayes" synthesis): one noisy histogram of the class labels and, for every feature, one
noisy histogram over (class x bin); synthetic rows draw a class, then every feature independently
given the class.  Pure epsilon-DP (delta = 0) by basic composition: the d + 1 histograms get
epsilon / (d + 1) each (add/remove one row changes one count of each histogram by 1).  Numeric
columns: 20 bins over the PUBLIC bounds of ``benchmarks/tables.py`` (log1p-spaced by skdpgen's rule
where the bounds span three or more orders of magnitude), values drawn uniformly inside the bin
(rounded for integer columns); categorical columns: the public categories (plus a missing slot for
nullable columns).  Run with the peers' virtual environment::

    /work/.venv-peers/bin/python benchmarks/peers/run_diffprivlib.py --dataset adult --epsilon 1 --seed 0

Writes ``{dataset}__diffprivlib_nb__eps{eps}__seed{seed}.csv`` and ``.json`` like run_smartnoise.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from run_smartnoise import log_scaled, train_frame  # noqa: E402


def _edges(spec: dict, n_bins: int = 20) -> tuple[np.ndarray, bool]:
    lo, hi = spec["bounds"]
    if log_scaled(spec):
        return lo - 1.0 + np.exp(np.linspace(0.0, np.log1p(hi - lo), n_bins + 1)), True
    return np.linspace(lo, hi, n_bins + 1), False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE.parent / "_out" / "peers")
    args = ap.parse_args()
    import diffprivlib
    from diffprivlib.tools import histogram

    df, schema, target = train_frame(args.dataset, None, args.seed)
    rng = np.random.default_rng(args.seed)
    start, cpu0 = time.perf_counter(), time.process_time()
    classes = list(schema[target]["categories"])
    y_code = pd.Series(df[target]).map({c: i for i, c in enumerate(classes)}).to_numpy()
    k = len(classes)
    features = [c for c in df.columns if c != target]
    eps_each = args.epsilon / (len(features) + 1)
    seed = int(rng.integers(2**31 - 1))
    cls_hist, _ = histogram(y_code, epsilon=eps_each, bins=k, range=(-0.5, k - 0.5), random_state=seed)
    cls_p = np.clip(cls_hist, 0, None).astype(float)
    cls_p = cls_p / cls_p.sum() if cls_p.sum() > 0 else np.full(k, 1.0 / k)
    models = {}
    for col in features:
        spec = schema[col]
        if spec["type"] in ("integer", "continuous"):
            edges, _ = _edges(spec)
            x = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
            miss = np.isnan(x)
            b = np.clip(np.searchsorted(edges[1:-1], np.clip(x, edges[0], edges[-1]), side="right"), 0, len(edges) - 2)
            nb = len(edges) - 1
            code = np.where(miss, nb, b)
            m = nb + 1
        else:
            cats = list(spec["categories"])
            lookup = {c: i for i, c in enumerate(cats)}
            lookup.update({str(c): i for i, c in enumerate(cats)})
            # missing and unknown values share one extra slot
            code = np.array([len(cats) if pd.isna(v) else lookup.get(v, lookup.get(str(v), len(cats)))
                             for v in df[col].to_numpy(dtype=object)])
            m = len(cats) + 1
        joint = y_code * m + code
        seed = int(rng.integers(2**31 - 1))
        h, _ = histogram(joint, epsilon=eps_each, bins=k * m, range=(-0.5, k * m - 0.5), random_state=seed)
        p = np.clip(h.reshape(k, m), 0, None).astype(float)
        p[p.sum(1) == 0] = 1.0
        models[col] = p / p.sum(1, keepdims=True)
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu0

    n = len(df)
    y_syn = rng.choice(k, size=n, p=cls_p)
    out = {}
    for col in features:
        spec, p = schema[col], models[col]
        u = rng.random(n)
        code = (p[y_syn].cumsum(1) < u[:, None]).sum(1)
        code = np.minimum(code, p.shape[1] - 1)
        if spec["type"] in ("integer", "continuous"):
            edges, _ = _edges(spec)
            nb = len(edges) - 1
            b = np.minimum(code, nb - 1)
            vals = edges[b] + rng.random(n) * (edges[b + 1] - edges[b])
            if spec["type"] == "integer":
                vals = np.round(vals)
            out[col] = np.where(code == nb, np.nan, vals)
        else:
            cats = list(spec["categories"])
            arr = np.array(cats + [None], dtype=object)
            out[col] = arr[np.minimum(code, len(cats))]
    fake = pd.DataFrame(out)[features].assign(**{target: np.array(classes, dtype=object)[y_syn]})
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.dataset}__diffprivlib_nb__eps{args.epsilon:g}__seed{args.seed}"
    fake.to_csv(args.out / f"{stem}.csv", index=False)
    rec = {"library": "diffprivlib", "synth": "diffprivlib_nb", "name": "diffprivlib_nb", "dataset": args.dataset,
           "epsilon": args.epsilon, "delta": 0.0, "seed": args.seed, "train_rows": n, "status": "ok",
           "fit_s": fit_s, "fit_cpu_s": fit_cpu_s, "csv": f"{stem}.csv", "target": target,
           "settings": {"histograms": len(features) + 1, "epsilon_each": eps_each, "bins": 20},
           "diffprivlib": diffprivlib.__version__,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    (args.out / f"{stem}.json").write_text(json.dumps(rec, indent=1))
    print(json.dumps({k: rec[k] for k in ("name", "dataset", "status", "fit_s")}))


if __name__ == "__main__":
    main()
