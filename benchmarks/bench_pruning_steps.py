"""How long must the Dirichlet gates train? Ranking quality against the number of gate steps (digits MLP).

On VALIDATION rows only: per seed, scikit-learn's digits (/16) are split 75/25 as in
``bench_pruning_compression.py``; the 75% are split again 75/25, the
``MLPClassifier((256, 128), max_iter=200)`` is trained on the first part (1,010 rows, 64 steps
per epoch at batch 16) and the gates are fitted on the same rows; accuracy on the 337
validation rows right after removing 50% / 70% / 90% of the units of each hidden layer (no
fine-tuning).  Rankings: the Dirichlet fit for ``--epochs`` passes (``min_steps=0``) and with the
default ``min_steps``; L1 norm of the incoming weights; random; and each unit's *own* effect,
the increase of the training loss when that unit alone is removed (``single-unit ablation``).

``--split test`` is the check on the test rows instead: the MLP and the gates on all 1,347
training rows (85 steps per epoch), accuracy on the 450 test rows.

Run (one torch thread; about 2 minutes on a 2-vCPU VM)::

    nice -n 5 python benchmarks/bench_pruning_steps.py --seeds 8 --out /tmp/pruning_steps.json
    nice -n 5 python benchmarks/bench_pruning_steps.py --split test --seeds 10 --epochs 1 --min-steps 250 500 \
        --rates 0.3 0.5 0.7 0.9 --no-ablation --out /tmp/pruning_steps_test.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from skdpgen import DirichletPruner
from skdpgen.pruning import _common as C
from skdpgen.pruning import analyse_network, mlp_to_torch, prune_network, select_units, torch_to_mlp
from skdpgen.pruning.networks import gated_forward

RATES = (0.5, 0.7, 0.9)


def ablation_importances(model, X, y) -> list[np.ndarray]:
    """Per prunable layer: the increase of the mean training loss when each unit ALONE is removed.

    A reference ranking (the oracle of first-order importance: it costs one pass over the rows per
    unit), not offered by the library.
    """
    net = (mlp_to_torch(model) if not isinstance(model, torch.nn.Module) else model).eval()
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if isinstance(model, torch.nn.Module):
        task, Yt = "multiclass", torch.as_tensor(np.asarray(y, dtype=np.int64))
    else:
        task, Yt = C.mlp_targets(model, y, "cpu")
    plan = analyse_network(net, Xt[:1])

    @torch.no_grad()
    def loss(scales) -> float:
        return sum(float(C.per_example_nll(gated_forward(net, plan, Xt[i:i + 2048], scales), Yt[i:i + 2048],
                                           task).sum()) for i in range(0, len(Xt), 2048)) / len(Xt)

    ones = [torch.ones(1, k) for k in plan.n_units]
    base = loss(ones)
    out = []
    for layer, k in enumerate(plan.n_units):
        gains = []
        for unit in range(k):
            scales = [t.clone() for t in ones]
            scales[layer][0, unit] = 0.0
            gains.append(loss(scales) - base)
        out.append(np.asarray(gains))
    return out


def run_seed(seed: int, epochs: list[float], min_steps: list[int], rates=RATES, split: str = "validation",
             ablation: bool = True, configs: tuple[str, ...] = ()) -> list[dict]:
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
    if split == "validation":  # the test rows are not used
        Xa, Xv, ya, yv = train_test_split(Xtr, ytr, test_size=0.25, random_state=100 + seed, stratify=ytr)
    else:
        Xa, Xv, ya, yv = Xtr, Xte, ytr, yte
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        mlp = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=200, random_state=seed).fit(Xa, ya)
        sk_epoch_ms = 1000 * (time.perf_counter() - t0) / mlp.n_iter_  # scikit-learn's own epoch (batch 200)
    net = mlp_to_torch(mlp)
    plan = analyse_network(net, torch.zeros(1, X.shape[1]))
    rows = []

    def record(name, importances, steps=0, fit_s=0.0):
        for rate in rates:
            pruned = torch_to_mlp(prune_network(net, plan, select_units(importances, rate)), mlp)
            rows.append(dict(seed=seed, ranking=name, rate=rate, accuracy=pruned.score(Xv, yv), steps=steps,
                             fit_ms=1000 * fit_s, sklearn_epoch_ms=sk_epoch_ms))

    for ep in epochs:
        p = DirichletPruner(mlp, epochs=ep, min_steps=0, random_state=seed).fit(Xa, ya)
        record(f"dirichlet, {ep:g} epochs", p.importances_, p.n_gate_steps_, p.fit_times_["dirichlet"])
    for steps in min_steps:
        p = DirichletPruner(mlp, min_steps=steps, random_state=seed).fit(Xa, ya)
        default = " (default)" if steps == DirichletPruner(mlp).min_steps else ""
        record(f"dirichlet, 1 epoch, min_steps={steps}{default}", p.importances_, p.n_gate_steps_,
               p.fit_times_["dirichlet"])
    for cfg in configs:  # "BATCH:LR:MIN_STEPS[:SAMPLES]": other gate fits (1 epoch, at least MIN_STEPS steps)
        batch, lr, steps, *samples = cfg.split(":")
        extra = dict(samples_per_batch=int(samples[0])) if samples else {}
        p = DirichletPruner(mlp, batch_size=int(batch), learning_rate=float(lr), min_steps=int(steps),
                            random_state=seed, **extra).fit(Xa, ya)
        name = f"dirichlet, batch {batch}, learning_rate {lr}, min_steps={steps}"
        record(name + (f", samples_per_batch={samples[0]}" if samples else ""), p.importances_, p.n_gate_steps_,
               p.fit_times_["dirichlet"])
    for criterion in ("l1", "random"):
        record(criterion, DirichletPruner(mlp, criterion=criterion, random_state=seed).fit(Xa, ya).importances_)
    if ablation:
        record("single-unit ablation", ablation_importances(mlp, Xa, ya))
    return rows


def main() -> None:
    from bench_pruning_compression import markdown

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--epochs", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0, 4.0],
                    help="gate fits of exactly this many epochs (min_steps=0)")
    ap.add_argument("--min-steps", type=int, nargs="+", default=[250], help="gate fits of 1 epoch, at least N steps")
    ap.add_argument("--configs", nargs="*", default=[],
                    help="other gate fits as BATCH:LEARNING_RATE:MIN_STEPS[:SAMPLES_PER_BATCH], e.g. 64:1.0:60")
    ap.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    ap.add_argument("--split", choices=["validation", "test"], default="validation")
    ap.add_argument("--no-ablation", action="store_true", help="skip the single-unit ablation ranking")
    ap.add_argument("--out", type=Path, default=Path("/tmp/pruning_steps.json"))
    ap.add_argument("--report", type=Path, default=None, help="only print the table of a saved run")
    args = ap.parse_args()
    if args.report:
        rows = json.loads(args.report.read_text())
    else:
        torch.set_num_threads(1)
        rows = [r for seed in range(args.seed_start, args.seed_start + args.seeds)
                for r in run_seed(seed, args.epochs, args.min_steps, args.rates, args.split, not args.no_ablation,
                                     tuple(args.configs))]
        args.out.write_text(json.dumps(rows, indent=1))
    df = pd.DataFrame(rows)
    table = df.pivot_table(index="ranking", columns="rate", values="accuracy", aggfunc="mean", sort=False)
    table.columns = [f"accuracy, {c:.0%} removed" for c in table.columns]
    extra = df.groupby("ranking", sort=False).agg(steps=("steps", "median"), fit_ms=("fit_ms", "median"),
                                                 seeds=("seed", "nunique"))
    if "sklearn_epoch_ms" in df:  # runs before session 5 did not record it
        extra["fit / scikit-learn epoch"] = extra["fit_ms"] / df["sklearn_epoch_ms"].median()
    print(markdown(table.join(extra).reset_index(), "{:.3f}"))


if __name__ == "__main__":
    main()
