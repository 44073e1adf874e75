"""DPMMDSynthesizer on real tables: fit time, peak memory and train-synthetic-test-real ROC-AUC.

Usage::

    python benchmarks/bench_mmd_tables.py --datasets adult credit_card_default bank_marketing \
        --epsilon 1 --seeds 0 1 2 --out benchmarks/_out/mmd_tables.json

Each (dataset, seed) runs in a fresh subprocess so that its peak resident memory is its own.
The synthetic table has as many rows as the training split; HistGradientBoostingClassifier
(skdpgen.metrics.default_classifier) is trained on it and scored (ROC-AUC, predict_proba) on the
real test split; the real-data ceiling trains the same model on the real training split.
Schemas are the public ones in benchmarks/tables.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_one(dataset: str, epsilon: float, seed: int, params: dict) -> dict:
    sys.path.insert(0, str(HERE))
    import tables
    from sklearn.metrics import roc_auc_score

    from skdpgen import DPMMDSynthesizer
    from skdpgen.metrics import default_classifier, tstr_score
    from skdpgen.metrics.utility import _as_object_frame

    Xtr, ytr, Xte, yte, schema = tables.LOADERS[dataset]()
    start = time.perf_counter()
    syn = DPMMDSynthesizer(epsilon=epsilon, delta=1e-5, schema=schema, random_state=seed, **params).fit(Xtr, ytr)
    fit_s = time.perf_counter() - start
    auc = tstr_score(syn, Xte, yte, n_samples=len(Xtr), random_state=seed)
    model = default_classifier(_as_object_frame(Xtr), seed).fit(_as_object_frame(Xtr), ytr)
    pos = model.classes_[1]
    ceiling = roc_auc_score(yte == pos, model.predict_proba(_as_object_frame(Xte))[:, 1])
    return {"dataset": dataset, "epsilon": epsilon, "seed": seed, "params": params, "fit_s": fit_s,
            "tstr_roc_auc": auc, "real_roc_auc": ceiling, "spent_epsilon": syn.privacy_report_["epsilon"],
            "device": str(syn.device_),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["adult", "credit_card_default", "bank_marketing"])
    ap.add_argument("--epsilon", type=float, nargs="+", default=[1.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--params", default="{}", help="JSON dict of DPMMDSynthesizer parameters")
    ap.add_argument("--out", type=Path, default=HERE / "_out" / "mmd_tables.json")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        d, e, s = args.child.split(",")
        print(json.dumps(run_one(d, float(e), int(s), json.loads(args.params))))
        return
    rows = []
    for dataset in args.datasets:
        for eps in args.epsilon:
            for seed in args.seeds:
                out = subprocess.run([sys.executable, __file__, "--child", f"{dataset},{eps},{seed}",
                                      "--params", args.params], capture_output=True, text=True, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"{dataset:22s} eps={eps:<4g} seed={seed} fit {row['fit_s']:6.1f} s  "
                      f"TSTR AUC {row['tstr_roc_auc']:.3f}  real {row['real_roc_auc']:.3f}  "
                      f"peak {row['peak_rss_mb']:.0f} MB", flush=True)
    print("\nmedians over seeds:")
    for dataset in args.datasets:
        for eps in args.epsilon:
            sel = [r for r in rows if r["dataset"] == dataset and r["epsilon"] == eps]
            med = {k: statistics.median(r[k] for r in sel) for k in ("fit_s", "tstr_roc_auc", "real_roc_auc",
                                                                      "peak_rss_mb")}
            lo, hi = min(r["tstr_roc_auc"] for r in sel), max(r["tstr_roc_auc"] for r in sel)
            print(f"| {dataset} | {eps:g} | {med['tstr_roc_auc']:.3f} ({lo:.3f}-{hi:.3f}) | "
                  f"{med['real_roc_auc']:.3f} | {med['fit_s']:.1f} | {med['peak_rss_mb']:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d")}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    # recorded figures reproduce bit for bit: the privacy noise follows the seeds (public data; never
    # for a real release, see skdpgen.set_config); worker processes inherit the variable
    os.environ.setdefault("SKDPGEN_REPRODUCIBLE_NOISE", "1")
    main()
