"""DPFlowSynthesizer on real tables: train-synthetic-test-real ROC-AUC, fit time, held-out likelihood.

Usage::

    python benchmarks/bench_flow_tables.py --datasets adult --epsilon 1 --seeds 0 --params '{"epochs": 10}'

The label is modelled as a categorical column of the table (the flow models the joint); synthetic
rows are split into X and y, HistGradientBoosting is trained on them and scored on the real test
split (ROC-AUC, predict_proba).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["adult"])
    ap.add_argument("--epsilon", type=float, nargs="+", default=[1.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--params", default="{}")
    ap.add_argument("--fit-y", action="store_true",
                    help="fit(X, y) (the label first in the discrete order) instead of the label as a column")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import numpy as np
    import tables
    from sklearn.metrics import roc_auc_score

    from skdpgen import DPFlowSynthesizer
    from skdpgen.metrics import default_classifier
    from skdpgen.metrics.utility import _as_object_frame

    params = json.loads(args.params)
    for name in args.datasets:
        Xtr, ytr, Xte, yte, schema = tables.LOADERS[name]()
        target = schema.pop("__target__")
        target_spec = schema.pop(target) if args.fit_y else None
        train = Xtr.assign(**{target: ytr.to_numpy()})
        for eps in args.epsilon:
            for seed in args.seeds:
                start = time.perf_counter()
                syn = DPFlowSynthesizer(epsilon=eps, schema=schema | {target: target_spec} if args.fit_y else schema,
                                        random_state=seed, **params)
                syn.fit(Xtr, ytr.rename(target)) if args.fit_y else syn.fit(train)
                fit_s = time.perf_counter() - start
                if args.fit_y:
                    fake, y_fake = syn.sample(len(train), random_state=seed, return_y=True)
                else:
                    fake = syn.sample(len(train), random_state=seed)
                    y_fake = fake.pop(target)
                model = default_classifier(_as_object_frame(fake), seed).fit(_as_object_frame(fake),
                                                                              np.asarray(y_fake))
                pos = model.classes_[1] if len(model.classes_) > 1 else None
                auc = float("nan") if pos is None else roc_auc_score(
                    yte.to_numpy() == pos, model.predict_proba(_as_object_frame(Xte))[:, 1])
                held = syn.score(Xte, yte.rename(target)) if args.fit_y else \
                    syn.score(Xte.assign(**{target: yte.to_numpy()}))
                print(json.dumps({"dataset": name, "epsilon": eps, "seed": seed, "params": params, "fit_y": args.fit_y,
                                  "fit_s": round(fit_s, 1), "tstr_roc_auc": round(auc, 4),
                                  "heldout_loglik": round(held, 3), "steps": syn.dpsgd_.steps,
                                  "noise_multiplier": round(syn.dpsgd_.noise_multiplier, 4),
                                  "spent_epsilon": syn.privacy_report_["epsilon"],
                                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
                      flush=True)


if __name__ == "__main__":
    # recorded figures reproduce bit for bit: the privacy noise follows the seeds (public data; never
    # for a real release, see skdpgen.set_config); worker processes inherit the variable
    os.environ.setdefault("SKDPGEN_REPRODUCIBLE_NOISE", "1")
    main()
