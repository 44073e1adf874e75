"""Non-private density quality: DPFlowSynthesizer(epsilon=inf) vs GaussianMixture chosen by BIC.

Data: the 13 continuous columns of credit_card_default (LIMIT_BAL, BILL_AMT1-6, PAY_AMT1-6), the fixed
70/30 split of ``tables.load_credit``.  The amounts are whole dollars with many exact zeros (atoms,
on which any density estimator's likelihood is unbounded), so every value gets a fixed uniform
dequantisation ``U(-1/2, 1/2)`` (seed 0), the same for both models.  Scores are held-out mean
log-densities per row in the ORIGINAL units:

* flow: ``score`` with public-style bounds covering the table (LIMIT_BAL [0, 1e6], BILL_AMT
  [-1e6, 2e6], PAY_AMT [0, 2e6]) widened by 1/2 (the schema's automatic log scale for LIMIT_BAL and
  PAY_AMT, Jacobian included);
* GaussianMixture (full covariances, n_components in {1, 2, 4, 8, 16, 32, 64, 96} chosen by BIC on the
  training split) fitted (a) on the affine standardisation z = (x - l) / (h - l) by the public
  bounds, and (b) on the same public per-column transform the flow sees (to_unit: log scale where
  the schema says so); both converted back to original units with the exact log-Jacobian.

Usage::

    python benchmarks/bench_flow_density.py --params '{"epochs": 30}'
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# public-style bounds that cover every value of the table (a density is 0 outside its bounds; the
# TSTR benchmarks' tighter bounds clip a few extreme amounts, which a density benchmark cannot do)
DENSITY_BOUNDS = {"LIMIT_BAL": (0, 1_000_000), "BILL_AMT": (-1_000_000, 2_000_000), "PAY_AMT": (0, 2_000_000)}


def density_bounds(column: str) -> tuple[float, float]:
    lo, hi = DENSITY_BOUNDS[column.rstrip("0123456789")]
    return lo - 0.5, hi + 0.5


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="{}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--components", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 96])
    ap.add_argument("--skip-gmm", action="store_true")
    ap.add_argument("--skip-flow", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import numpy as np
    import tables
    from sklearn.mixture import GaussianMixture

    from skdpgen import DPFlowSynthesizer, Schema
    from skdpgen.encoding import to_unit

    Xtr, _, Xte, _, full = tables.load_credit()
    cols = [c for c, s in full.items() if c != "__target__" and s["type"] == "continuous"]
    rng = np.random.default_rng(0)
    tr = Xtr[cols].astype(float) + rng.uniform(-0.5, 0.5, (len(Xtr), len(cols)))
    te = Xte[cols].astype(float) + rng.uniform(-0.5, 0.5, (len(Xte), len(cols)))
    schema = {c: {"type": "continuous", "bounds": list(density_bounds(c))} for c in cols}
    specs = Schema.coerce(schema)
    out = {"n_train": len(tr), "n_test": len(te), "columns": cols}

    if not args.skip_gmm:
        lo = np.array([schema[c]["bounds"][0] for c in cols])
        hi = np.array([schema[c]["bounds"][1] for c in cols])

        def unit(frame):
            """Public per-column transform of the flow and its log-Jacobian per row."""
            u = np.column_stack([to_unit(frame[c].to_numpy(), specs[c]) for c in cols])
            logjac = np.zeros(len(frame))
            for c in cols:
                s = specs[c]
                a, b = s.bounds
                x = frame[c].to_numpy()
                logjac += (-np.log1p(x - a) - math.log(math.log1p(b - a)) if s.resolved_scale == "log"
                           else -math.log(b - a) * np.ones(len(x)))
            return u, logjac

        for name, transform in (("affine", lambda f: (((f.to_numpy() - lo) / (hi - lo)),
                                                       -np.log(hi - lo).sum() * np.ones(len(f)))),
                                ("public_log", unit)):
            ztr, _ = transform(tr)
            zte, jte = transform(te)
            best = None
            for k in args.components:
                start = time.perf_counter()
                gm = GaussianMixture(k, covariance_type="full", random_state=0, max_iter=300, reg_covar=1e-6)
                gm.fit(ztr)
                bic = gm.bic(ztr)
                held = float(np.mean(gm.score_samples(zte) + jte))
                rec = {"n_components": k, "bic": round(bic, 1), "heldout_loglik": round(held, 4),
                       "fit_s": round(time.perf_counter() - start, 1)}
                print(json.dumps({"gmm": name, **rec}), flush=True)
                if best is None or bic < best["bic"]:
                    best = rec
            out[f"gmm_{name}_bic_best"] = best

    params = json.loads(args.params)
    for seed in [] if args.skip_flow else args.seeds:
        start = time.perf_counter()
        flow = DPFlowSynthesizer(epsilon=math.inf, schema=schema, random_state=seed, **params).fit(tr)
        rec = {"seed": seed, "params": params, "fit_s": round(time.perf_counter() - start, 1),
               "heldout_loglik": round(flow.score(te), 4), "train_loglik": round(flow.score(tr), 4)}
        print(json.dumps({"flow": rec}), flush=True)
        out.setdefault("flow", []).append(rec)
    print(json.dumps(out))


if __name__ == "__main__":
    # recorded figures reproduce bit for bit: the privacy noise follows the seeds (public data; never
    # for a real release, see skdpgen.set_config); worker processes inherit the variable
    os.environ.setdefault("SKDPGEN_REPRODUCIBLE_NOISE", "1")
    main()
