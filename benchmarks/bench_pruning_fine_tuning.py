"""Fine-tuning after pruning, on VALIDATION rows only: learning-rate schedules and gate-fit length.

Questions (issue 5, "no worse than magnitude pruning after fine-tuning"):

* Is the original network converged?  ``--train-schedules``: LeNet-5 trained 8 epochs with Adam
  at a constant 2e-3 (the compression benchmark's protocol) or along a cosine from 2e-3 to 0
  (:func:`skdpgen.dpsgd.cosine_schedule`).
* Does the fine-tuning schedule matter?  ``--fine-tune-schedules``:
  ``DirichletPruner(fine_tune_schedule="constant" | "cosine")``, ``--fine-tune`` epochs.
* Does a longer gate fit, or another setting of the gates, make the Dirichlet selection
  fine-tune better?  ``--gate-epochs``, ``--variants``.
* Does any loss-based ranking fine-tune as well as L1?  ``--ablation``: each unit's own effect on
  the training loss (removed alone), a reference ranking that the library does not offer.

Networks (``--net``): ``lenet`` (LeNet-5 of ``bench_pruning_compression.py``; 500 validation rows
carved, stratified, from its 4,000 training rows of ``../shared/data/mnist_5k``, the network and
the gates on the other 3,500) or ``digits`` (the ``MLPClassifier((256, 128))`` on scikit-learn's
digits; 337 validation rows carved from the 1,347 training rows).  The test rows are never used.
Rankings: Dirichlet (one per ``--gate-epochs``), L1, random; accuracy right after pruning and
after fine-tuning.  The report gives mean accuracies, paired differences to L1 and the paired
effect of the cosine schedule (mean ± standard error over seeds; seeds better / tied / worse).

Run (one torch thread; LeNet about 1 minute per seed, digits about 10 s, on a 2-vCPU VM)::

    nice -n 5 python benchmarks/bench_pruning_fine_tuning.py --net lenet --seeds 10 --seed-start 0 --out /tmp/l0.jsonl
    nice -n 5 python benchmarks/bench_pruning_fine_tuning.py --net lenet --seeds 10 --seed-start 10 --out /tmp/l1.jsonl
    python benchmarks/bench_pruning_fine_tuning.py --report /tmp/l0.jsonl /tmp/l1.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
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
from skdpgen.dpsgd import cosine_schedule
from skdpgen.pruning import _common as C
from skdpgen.pruning import pruner as pruner_module

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pruning_compression import accuracy, lenet5, load_mnist, markdown  # noqa: E402
from bench_pruning_steps import ablation_importances  # noqa: E402


def _loss(model, batch):
    xb, yb = batch
    return C.per_example_nll(model(xb), yb, "multiclass")


def lenet_split(seed: int, data, train_schedule: str, arch: str = "classic"):
    X, y = data
    Xtr, _, ytr, _ = train_test_split(X, y, test_size=1000, random_state=seed, stratify=y)  # test rows unused
    Xa, Xv, ya, yv = train_test_split(Xtr, ytr, test_size=500, random_state=100 + seed, stratify=ytr)
    net = lenet5(torch.Generator().manual_seed(seed), arch).train()
    C.train_plain(net, _loss, (torch.as_tensor(Xa), torch.as_tensor(ya)), epochs=8, batch_size=16, lr=2e-3,
                  generator=torch.Generator().manual_seed(seed),
                  scheduler=None if train_schedule == "constant" else cosine_schedule)
    net.eval()
    return net, Xa, ya, Xv, yv, accuracy(net, torch.as_tensor(Xv), yv)


def digits_split(seed: int):
    X, y = load_digits(return_X_y=True)
    Xtr, _, ytr, _ = train_test_split(X / 16.0, y, test_size=0.25, random_state=seed, stratify=y)
    Xa, Xv, ya, yv = train_test_split(Xtr, ytr, test_size=0.25, random_state=100 + seed, stratify=ytr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=200, random_state=seed).fit(Xa, ya)
    return mlp, Xa, ya, Xv, yv, mlp.score(Xv, yv)


def _fit(model, X, y, importances=None, **kw) -> DirichletPruner:
    """``DirichletPruner(model, **kw).fit(X, y)``; with ``importances``, the ranking is those (the
    removal and fine-tuning code of the library, with the L1 ranking swapped out for the fit)."""
    if importances is None:
        return DirichletPruner(model, **kw).fit(X, y)
    saved = pruner_module.magnitude_importances
    pruner_module.magnitude_importances = lambda net, plan: [np.asarray(v, dtype=np.float64) for v in importances]
    try:
        return DirichletPruner(model, **{**kw, "criterion": "l1"}).fit(X, y)
    finally:
        pruner_module.magnitude_importances = saved


def run_seed(seed: int, args, data) -> list[dict]:
    rows = []
    net_name = f"lenet-{args.arch}" if args.net == "lenet" and args.arch != "classic" else args.net
    for train_schedule in args.train_schedules if args.net == "lenet" else ["adam (scikit-learn)"]:
        model, Xa, ya, Xv, yv, base = lenet_split(seed, data, train_schedule, args.arch) if args.net == "lenet" \
            else digits_split(seed)
        rankings = [(f"dirichlet, {e:g} epoch(s)", dict(criterion="dirichlet", epochs=e)) for e in args.gate_epochs]
        rankings += [(f"dirichlet, {v}", dict(criterion="dirichlet", **json.loads(v))) for v in args.variants]
        rankings += [(c, dict(criterion=c)) for c in args.baselines]
        if args.ablation:
            rankings.append(("single-unit ablation", dict(importances=ablation_importances(model, Xa, ya))))
        for rate in args.rates:
            for name, kw in rankings:
                common = dict(compression=rate, random_state=seed, **kw)
                pruned = _fit(model, Xa, ya, **common).score(Xv, yv)
                for schedule in args.fine_tune_schedules:
                    p = _fit(model, Xa, ya, fine_tune_epochs=args.fine_tune, fine_tune_schedule=schedule, **common)
                    rows.append(dict(net=net_name, seed=seed, train=train_schedule, rate=rate, ranking=name,
                                     fine_tune=schedule, base=base, pruned=pruned, fine_tuned=p.score(Xv, yv),
                                     params=p.n_params_pruned_))
    return rows


def _paired(d: pd.Series) -> str:
    d = 100 * d.dropna()
    se = d.std(ddof=1) / np.sqrt(len(d))
    return f"{d.mean():+.2f} ± {se:.2f} ({(d > 1e-9).sum()}/{(d.abs() <= 1e-9).sum()}/{(d < -1e-9).sum()})"


def report(rows: list[dict]) -> None:
    df = pd.DataFrame(rows)
    keys = ["net", "train", "rate"]
    means = df.groupby([*keys, "fine_tune", "ranking"], sort=False).agg(
        seeds=("seed", "nunique"), unpruned=("base", "mean"), pruned=("pruned", "mean"),
        fine_tuned=("fine_tuned", "mean")).reset_index()
    out = []
    for _, r in means.iterrows():
        grp = df[(df[keys] == r[keys]).all(axis=1) & (df.fine_tune == r.fine_tune)]
        wide = grp.pivot_table(index="seed", columns="ranking", values="fine_tuned")
        vs_l1 = "" if r.ranking == "l1" else _paired(wide[r.ranking] - wide["l1"])
        same = df[(df[keys] == r[keys]).all(axis=1) & (df.ranking == r.ranking)]
        sched = same.pivot_table(index="seed", columns="fine_tune", values="fine_tuned")
        cos = _paired(sched["cosine"] - sched["constant"]) if {"cosine", "constant"} <= set(sched) \
            and r.fine_tune == "cosine" else ""
        out.append({**r.to_dict(), "minus L1, points": vs_l1, "cosine minus constant, points": cos})
    print(markdown(pd.DataFrame(out)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", choices=["lenet", "digits"], default="lenet")
    ap.add_argument("--arch", choices=["classic", "caffe"], default="classic",
                    help="--net lenet: classic LeNet-5 (6-16-120-84) or LeNet-5-Caffe (20-50-800-500)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--rates", type=float, nargs="+", default=None, help="default: 0.5 (lenet), 0.5 0.7 0.9 (digits)")
    ap.add_argument("--train-schedules", nargs="+", choices=["constant", "cosine"], default=["constant", "cosine"])
    ap.add_argument("--fine-tune-schedules", nargs="+", choices=["constant", "cosine"],
                    default=["constant", "cosine"])
    ap.add_argument("--gate-epochs", type=float, nargs="*", default=[1.0])
    ap.add_argument("--variants", nargs="*", default=[],
                    help='more Dirichlet rankings as JSON parameters, e.g. \'{"prior_concentration": 1}\'')
    ap.add_argument("--baselines", nargs="*", choices=["l1", "random"], default=["l1", "random"])
    ap.add_argument("--ablation", action="store_true",
                    help="also rank by single-unit ablation (loss increase when each unit alone is removed)")
    ap.add_argument("--fine-tune", type=float, default=3.0, help="fine-tuning epochs")
    ap.add_argument("--out", type=Path, default=Path("/tmp/pruning_fine_tuning.jsonl"))
    ap.add_argument("--report", type=Path, nargs="*", default=None, help="only print the table of saved runs")
    args = ap.parse_args()
    if args.report:
        report([json.loads(line) for p in args.report for line in p.read_text().splitlines() if line])
        return
    torch.set_num_threads(1)
    args.rates = args.rates or ([0.5] if args.net == "lenet" else [0.5, 0.7, 0.9])
    data = load_mnist() if args.net == "lenet" else None
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        with args.out.open("a") as f:
            for row in run_seed(seed, args, data):
                f.write(json.dumps(row) + "\n")
        print(args.net, "seed", seed, "done", flush=True)


if __name__ == "__main__":
    main()
