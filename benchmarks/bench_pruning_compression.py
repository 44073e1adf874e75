"""Compression vs accuracy and cost of DirichletPruner (issue 5), against L1-norm and random unit pruning.

Two networks, pruned at 30/50/70/90% of their hidden units (the same rate in every prunable layer):

* ``digits``: scikit-learn ``MLPClassifier(hidden_layer_sizes=(256, 128))`` on scikit-learn's digits
  (75/25 stratified split), pruned as an MLP (the result is a smaller fitted ``MLPClassifier``);
* ``mnist``: a LeNet-5-style CNN (conv 6 - conv 16 - fc 120 - fc 84, batch-norm after the
  convolutions; ``--arch caffe``: the 20-50-800-500 "LeNet-5-Caffe" of the Dirichlet-pruning
  paper) on ``../shared/data/mnist_5k`` (4,000 train / 1,000 test, stratified), trained here
  with Adam.

For each method (``criterion`` "dirichlet", "l1", "random" of :class:`skdpgen.DirichletPruner`,
so that removal and fine-tuning are the same code), test accuracy right after pruning and after
``--fine-tune`` epochs of fine-tuning.  Cost: the Dirichlet fit (one epoch, batch 16) against one
epoch of training the original network with the same batch size, loss and code path
(``train_plain``), in the same process; medians over repeats.

Run (one torch thread; about 10 minutes on a 2-vCPU VM)::

    nice -n 10 python benchmarks/bench_pruning_compression.py --seeds 3 --out /tmp/pruning_compression.json
"""

from __future__ import annotations

import argparse
import copy
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
from torch import nn

from skdpgen import DirichletPruner
from skdpgen.dpsgd import cosine_schedule
from skdpgen.pruning import _common as C
from skdpgen.pruning import mlp_to_torch

RATES = (0.3, 0.5, 0.7, 0.9)
METHODS = ("dirichlet", "l1", "random")
PRUNER_KW: dict = {}  # extra DirichletPruner parameters of the accuracy grid (--samples-per-batch, ...)
MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist_5k" / "mnist_5k.csv.gz"


def _conv_bn_relu_pool(c_in: int, c_out: int, padding: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 5, padding=padding, device="meta"), nn.BatchNorm2d(c_out, device="meta"),
            nn.ReLU(), nn.MaxPool2d(2)]


def lenet5(generator: torch.Generator, arch: str = "classic") -> nn.Sequential:
    """LeNet-5 for 28x28 digits, initialised from ``generator``.

    ``arch="classic"`` (LeCun et al. 1998): conv 6 (pad 2) - conv 16 - fc 120 - fc 84 - 10, 61,750
    parameters.  ``arch="caffe"``: the "LeNet-5-Caffe" 20-50-800-500 of the Bayesian-compression and
    Dirichlet-pruning papers (Louizos et al. 2017; Adamczewski & Park 2021): conv 20 - conv 50 -
    fc 500 - 10, 431,220 parameters.  Both with batch-norm after each convolution.
    """
    from skdpgen._torch import init_module_

    if arch == "classic":
        body = [*_conv_bn_relu_pool(1, 6, 2), *_conv_bn_relu_pool(6, 16, 0), nn.Flatten(),
                nn.Linear(400, 120, device="meta"), nn.ReLU(), nn.Linear(120, 84, device="meta"), nn.ReLU(),
                nn.Linear(84, 10, device="meta")]
    elif arch == "caffe":
        body = [*_conv_bn_relu_pool(1, 20, 0), *_conv_bn_relu_pool(20, 50, 0), nn.Flatten(),
                nn.Linear(800, 500, device="meta"), nn.ReLU(), nn.Linear(500, 10, device="meta")]
    else:
        raise ValueError(f"unknown LeNet-5 architecture {arch!r}")
    net = nn.Sequential(*body).to_empty(device="cpu")
    init_module_(net, generator)  # Linear layers
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):
                bound = 1 / np.sqrt(m.in_channels * 25)
                m.weight.uniform_(-bound, bound, generator=generator)
                m.bias.uniform_(-bound, bound, generator=generator)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
    return net


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def accuracy(net: nn.Module, X: torch.Tensor, y: np.ndarray) -> float:
    return float((C.torch_outputs(net, X).argmax(1).numpy() == y).mean())


def epoch_time(net: nn.Module, X: torch.Tensor, Y: torch.Tensor, task: str, batch_size: int, seed: int) -> float:
    """Seconds for one training epoch of (a copy of) ``net``: Adam on all weights, same loss and batch size."""
    model = copy.deepcopy(net).train().requires_grad_(True)

    def loss(m, batch):
        xb, yb = batch
        return C.per_example_nll(m(xb), yb, task)

    t0 = time.perf_counter()
    C.train_plain(model, loss, (X, Y), epochs=1, batch_size=batch_size, lr=1e-3,
                  generator=torch.Generator().manual_seed(seed))
    return time.perf_counter() - t0


def run_digits(seed: int, fine_tune: float, batch_size: int, repeats: int, timing_only: bool = False
               ) -> tuple[list[dict], dict]:
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=200, random_state=seed).fit(Xtr, ytr)
    base = mlp.score(Xte, yte)
    rows = []
    for rate in () if timing_only else RATES:
        for method in METHODS:
            kw = dict(compression=rate, criterion=method, batch_size=batch_size, random_state=seed, **PRUNER_KW)
            p0 = DirichletPruner(mlp, **kw).fit(Xtr, ytr)
            p1 = DirichletPruner(mlp, fine_tune_epochs=fine_tune, **kw).fit(Xtr, ytr)
            rows.append(dict(net="digits MLP 256-128", seed=seed, rate=rate, method=method, base=base,
                             pruned=p0.score(Xte, yte), fine_tuned=p1.score(Xte, yte),
                             params=p1.n_params_pruned_, params_before=p1.n_params_))
    # cost: Dirichlet fit vs one training epoch, alternating, same process
    net = mlp_to_torch(mlp)
    Xt = torch.as_tensor(Xtr, dtype=torch.float32)
    task, Yt = C.mlp_targets(mlp, ytr, "cpu")
    fits, epochs = [], []
    for r in range(repeats):
        fits.append(DirichletPruner(mlp, batch_size=batch_size, random_state=r).fit(Xtr, ytr).fit_times_["dirichlet"])
        epochs.append(epoch_time(net, Xt, Yt, task, batch_size, r))
    return rows, dict(net="digits MLP 256-128", seed=seed, dirichlet_s=_median(fits),
                      epoch_s=_median(epochs), n_train=len(Xtr))


def load_mnist():
    frame = pd.read_csv(MNIST)
    y = frame.pop("label").to_numpy()
    X = frame.to_numpy(dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0
    return X, y


def run_mnist(seed: int, fine_tune: float, batch_size: int, repeats: int, train_epochs: int, data,
              timing_only: bool = False, schedule: str = "constant", arch: str = "classic") -> tuple[list, dict]:
    X, y = data
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=1000, random_state=seed, stratify=y)
    net = lenet5(torch.Generator().manual_seed(seed), arch)
    Xt, Xv = torch.as_tensor(Xtr), torch.as_tensor(Xte)
    Yt = torch.as_tensor(ytr)

    def loss(m, batch):
        xb, yb = batch
        return C.per_example_nll(m(xb), yb, "multiclass")

    net.train()
    t0 = time.perf_counter()
    C.train_plain(net, loss, (Xt, Yt), epochs=train_epochs, batch_size=batch_size, lr=2e-3,
                  generator=torch.Generator().manual_seed(seed),
                  scheduler=None if schedule == "constant" else cosine_schedule)
    train_s = time.perf_counter() - t0
    net.eval()
    base = accuracy(net, Xv, yte)
    rows = []
    lenet = "LeNet-5" if arch == "classic" else "LeNet-5-Caffe"
    name = f"mnist_5k {lenet}" + ("" if schedule == "constant" else f", {schedule} training")
    if PRUNER_KW.get("fine_tune_schedule", "constant") != "constant":
        name += f", {PRUNER_KW['fine_tune_schedule']} fine-tuning"
    for rate in () if timing_only else RATES:
        for method in METHODS:
            kw = dict(compression=rate, criterion=method, batch_size=batch_size, random_state=seed, **PRUNER_KW)
            p0 = DirichletPruner(net, **kw).fit(Xtr, ytr)
            p1 = DirichletPruner(net, fine_tune_epochs=fine_tune, **kw).fit(Xtr, ytr)
            rows.append(dict(net=name, seed=seed, rate=rate, method=method, base=base,
                             pruned=p0.score(Xte, yte), fine_tuned=p1.score(Xte, yte),
                             params=p1.n_params_pruned_, params_before=p1.n_params_,
                             units=p1.n_units_pruned_))
    fits, epochs = [], []
    for r in range(repeats):
        fits.append(DirichletPruner(net, batch_size=batch_size, random_state=r).fit(Xtr, ytr).fit_times_["dirichlet"])
        epochs.append(epoch_time(net, Xt, Yt, "multiclass", batch_size, r))
    return rows, dict(net=f"mnist_5k {lenet}", seed=seed, dirichlet_s=_median(fits),
                      epoch_s=_median(epochs), n_train=len(Xtr), train_s_total=train_s,
                      train_epochs=train_epochs)


def markdown(df: pd.DataFrame, fmt: str = "{:.4f}") -> str:
    """A Markdown table (no tabulate dependency)."""
    def cell(v):
        return fmt.format(v) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def paired_vs_l1(df: pd.DataFrame) -> pd.DataFrame:
    """Per network and rate: fine-tuned accuracy of each method minus L1's on the same seed, in points.

    Mean, standard error over seeds and how many seeds are better / tied / worse than L1 (the
    seed fixes the split, the network and the fine-tuning minibatches of all methods alike).
    """
    out = []
    for (net, rate), grp in df.groupby(["net", "rate"], sort=False):
        ft = grp.pivot_table(index="seed", columns="method", values="fine_tuned")
        for method in (m for m in METHODS if m != "l1" and m in ft):
            d = 100 * (ft[method] - ft["l1"]).dropna().to_numpy()
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            out.append(dict(net=net, rate=rate, method=method, seeds=len(d), minus_l1_mean=d.mean(), se=se,
                            better=int((d > 1e-9).sum()), tied=int((abs(d) <= 1e-9).sum()),
                            worse=int((d < -1e-9).sum())))
    return pd.DataFrame(out)


def report(rows: list[dict], costs: list[dict]) -> None:
    if rows:
        df = pd.DataFrame(rows)
        df["ft_drop_points"] = 100 * (df["base"] - df["fine_tuned"])
        table = df.groupby(["net", "rate", "method"], sort=False).agg(
            base=("base", "median"), pruned=("pruned", "median"), fine_tuned=("fine_tuned", "median"),
            ft_drop_points=("ft_drop_points", "median"), params=("params", "median"),
            params_before=("params_before", "median"), seeds=("seed", "count")).reset_index()
        print(markdown(table))
        print()
        print(markdown(paired_vs_l1(df), "{:.2f}"))
    costs = [c for c in costs if np.isfinite(c["dirichlet_s"])]  # --repeats 0: no timing
    if not costs:
        return
    cost = pd.DataFrame(costs)
    cost["ratio"] = cost["dirichlet_s"] / cost["epoch_s"]
    print()
    print(markdown(cost, "{:.3f}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--fine-tune", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats (medians)")
    ap.add_argument("--train-epochs", type=int, default=8, help="training epochs of the CNN")
    ap.add_argument("--train-schedule", choices=["constant", "cosine"], default="constant",
                    help="learning rate of the CNN's training: constant 2e-3, or a cosine from 2e-3 to 0")
    ap.add_argument("--arch", choices=["classic", "caffe"], default="classic",
                    help="the CNN: classic LeNet-5 (6-16-120-84) or LeNet-5-Caffe (20-50-800-500)")
    ap.add_argument("--only", choices=["digits", "mnist"], default=None)
    ap.add_argument("--rates", type=float, nargs="+", default=None, help="fractions of units removed (default: all)")
    ap.add_argument("--samples-per-batch", type=int, default=None,
                    help="DirichletPruner(samples_per_batch=...) in the accuracy grid (default: its default)")
    ap.add_argument("--fine-tune-schedule", choices=["constant", "cosine"], default=None,
                    help="DirichletPruner(fine_tune_schedule=...) in the accuracy grid (default: its default)")
    ap.add_argument("--seed-start", type=int, default=0, help="first seed (to split a run over processes)")
    ap.add_argument("--timing-only", action="store_true", help="skip the accuracy grid, measure the cost only")
    ap.add_argument("--out", type=Path, default=Path("/tmp/pruning_compression.json"))
    ap.add_argument("--report", type=Path, nargs="*", default=None, help="only print the tables of saved runs")
    args = ap.parse_args()
    if args.report:
        saved = [json.loads(p.read_text()) for p in args.report]
        report([r for s in saved for r in s["rows"]], [c for s in saved for c in s["costs"]])
        return
    torch.set_num_threads(1)
    global RATES
    RATES = tuple(args.rates) if args.rates else RATES
    if args.samples_per_batch is not None:
        PRUNER_KW["samples_per_batch"] = args.samples_per_batch
    if args.fine_tune_schedule is not None:
        PRUNER_KW["fine_tune_schedule"] = args.fine_tune_schedule
    rows, costs = [], []
    if args.only in (None, "digits"):
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            r, c = run_digits(seed, args.fine_tune, args.batch_size, args.repeats, args.timing_only)
            rows += r
            costs.append(c)
            print("digits seed", seed, "done", flush=True)
    if args.only in (None, "mnist"):
        data = load_mnist()
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            r, c = run_mnist(seed, args.fine_tune, args.batch_size, args.repeats, args.train_epochs, data,
                             args.timing_only, args.train_schedule, args.arch)
            rows += r
            costs.append(c)
            print("mnist seed", seed, "done", flush=True)
    args.out.write_text(json.dumps({"rows": rows, "costs": costs}, default=float, indent=1))
    report(rows, costs)


if __name__ == "__main__":
    main()
