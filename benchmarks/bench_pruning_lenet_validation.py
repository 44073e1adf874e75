"""Validation-split diagnostics of LeNet-5 pruning at one rate: per-layer rankings and fine-tuning budgets.

Why does the Dirichlet selection, better than L1 right after pruning, fine-tune no better? This
script answers on VALIDATION rows only (500 rows carved, stratified, from the benchmark's 4,000
training rows of ``../shared/data/mnist_5k``; the network is trained on the other 3,500, as in
``bench_pruning_compression.py``), so that nothing is chosen on the test split.

A *mask* names the ranking of each of the four prunable layers (conv1, conv2, fc1, fc2):
``d`` Dirichlet posterior means, ``l`` L1 norm of the incoming weights, ``r`` random; e.g.
``ddll`` ranks the convolutions by Dirichlet and the fully connected layers by L1.  Every mask is
pruned at ``--rate`` of the units of each layer and fine-tuned for each of ``--fine-tune``
epochs (Adam lr 1e-3, batch 16, the same minibatches for every mask of a seed).  The report gives,
per mask and fine-tuning budget, the mean validation accuracy and the paired difference to
``llll`` (mean, standard error, seeds better / tied / worse).

Run (one torch thread; about 30 s per seed on a 2-vCPU VM)::

    nice -n 5 python benchmarks/bench_pruning_lenet_validation.py --seeds 12 --out /tmp/lenet_val.jsonl
    python benchmarks/bench_pruning_lenet_validation.py --report /tmp/lenet_val.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from skdpgen import DirichletPruner
from skdpgen.pruning import _common as C
from skdpgen.pruning import analyse_network, prune_network, select_units

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pruning_compression import accuracy, lenet5, load_mnist, markdown  # noqa: E402

CRITERIA = {"d": "dirichlet", "l": "l1", "r": "random"}
DEFAULT_MASKS = ("llll", "dddd", "rrrr", "dlll", "ldll", "lldl", "llld", "ddll", "lldd")


def _loss(model, batch):
    xb, yb = batch
    return C.per_example_nll(model(xb), yb, "multiclass")


def run_seed(seed: int, data, masks, rate: float, fine_tune: list[float], train_epochs: int) -> list[dict]:
    X, y = data
    Xtr, _, ytr, _ = train_test_split(X, y, test_size=1000, random_state=seed, stratify=y)  # test rows unused
    Xa, Xv, ya, yv = train_test_split(Xtr, ytr, test_size=500, random_state=100 + seed, stratify=ytr)
    Xt, Xvt, Yt = torch.as_tensor(Xa), torch.as_tensor(Xv), torch.as_tensor(ya)
    net = lenet5(torch.Generator().manual_seed(seed)).train()
    C.train_plain(net, _loss, (Xt, Yt), epochs=train_epochs, batch_size=16, lr=2e-3,
                  generator=torch.Generator().manual_seed(seed))
    net.eval()
    base = accuracy(net, Xvt, yv)
    plan = analyse_network(net, Xt[:1])
    importances = {c: DirichletPruner(net, compression=rate, criterion=name, batch_size=16, random_state=seed)
                   .fit(Xa, ya).importances_ for c, name in CRITERIA.items()}
    keep = {c: select_units(imp, rate) for c, imp in importances.items()}
    rows = []
    for mask in masks:
        kept = select_units([importances[c][i] for i, c in enumerate(mask)], rate)
        pruned = prune_network(net, plan, kept).eval()
        row = dict(seed=seed, mask=mask, rate=rate, base=base, pruned=accuracy(pruned, Xvt, yv),
                   overlap_with_l1=[len(set(a) & set(b)) for a, b in zip(kept, keep["l"], strict=True)],
                   kept=[len(k) for k in kept])
        for epochs in fine_tune:
            model = copy.deepcopy(pruned).train().requires_grad_(True)
            C.train_plain(model, _loss, (Xt, Yt), epochs=epochs, batch_size=16, lr=1e-3,
                          generator=torch.Generator().manual_seed(seed + 7))
            row[f"ft{epochs:g}"] = accuracy(model.eval(), Xvt, yv)
        rows.append(row)
    return rows


def report(rows: list[dict]) -> None:
    df = pd.DataFrame(rows)
    budgets = [c for c in df.columns if c.startswith("ft")]
    out = []
    for mask, grp in df.groupby("mask", sort=False):
        ref = df[df["mask"] == "llll"].set_index("seed")
        g = grp.set_index("seed")
        seeds = g.index.intersection(ref.index)
        line = dict(mask=mask, seeds=len(seeds), pruned=g["pruned"].mean())
        for b in budgets:
            d = 100 * (g.loc[seeds, b] - ref.loc[seeds, b]).to_numpy()
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            line[b] = g[b].mean()
            line[f"{b} vs llll"] = (f"{d.mean():+.2f} ± {se:.2f} "
                                    f"({(d > 1e-9).sum()}/{(abs(d) <= 1e-9).sum()}/{(d < -1e-9).sum()})")
        out.append(line)
    print(markdown(pd.DataFrame(out)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.5)
    ap.add_argument("--masks", nargs="+", default=list(DEFAULT_MASKS))
    ap.add_argument("--fine-tune", type=float, nargs="+", default=[1.0, 3.0])
    ap.add_argument("--train-epochs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("/tmp/lenet_val.jsonl"))
    ap.add_argument("--report", type=Path, nargs="*", default=None, help="only print the table of saved runs")
    args = ap.parse_args()
    if args.report:
        report([json.loads(line) for p in args.report for line in p.read_text().splitlines() if line.strip()])
        return
    bad = [m for m in args.masks if len(m) != 4 or set(m) - set(CRITERIA)]
    if bad:
        ap.error(f"masks are 4 letters from {sorted(CRITERIA)} (conv1, conv2, fc1, fc2): {bad}")
    torch.set_num_threads(1)
    data = load_mnist()
    rows = []
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        new = run_seed(seed, data, args.masks, args.rate, args.fine_tune, args.train_epochs)
        with args.out.open("a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in new)
        rows += new
        print("seed", seed, "done", flush=True)
    report(rows)


if __name__ == "__main__":
    main()
