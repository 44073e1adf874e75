r"""Empirical privacy audit of skdpgen's DP-SGD engine (:func:`skdpgen.dpsgd.train_dpsgd`).

Usage::

    nice -n 10 python benchmarks/bench_audit_dpsgd.py --epsilons 1 4 8 --trials 600 \
        --out benchmarks/_out/audit_dpsgd.json

Set-up (a white-box "Dirac canary", Nasr et al. 2021; Jagielski et al. 2020):

* a tiny model, ``nn.Linear(d, 1, bias=False)`` with zero initialisation, trained with plain SGD
  (no momentum) through ``train_dpsgd`` exactly as an estimator does: Poisson sampling,
  per-example clipping to C = 1, Gaussian noise calibrated by the PRV accountant to
  (epsilon, 1e-5) for the planned steps;
* N = 100 rows whose last coordinate is 0 (logistic loss); the neighbouring dataset D adds one
  canary row :math:`x_c = e_d` with the loss :math:`-10\, w^\top x_c`, whose gradient
  :math:`-10\, e_d` is clipped to norm C and points along a coordinate no other row touches;
* test statistic: the final weight :math:`w_d` (larger = canary present); without the canary it
  is pure noise, with it every step that samples the canary adds :math:`\eta C / (qN)`;
* :func:`skdpgen.metrics.audit_synthesizer` runs ``--trials`` independent trainings on each
  dataset and :func:`skdpgen.metrics.empirical_epsilon` turns the statistics into a 95 % lower
  bound (threshold chosen on half the trials, Clopper-Pearson on the other half).

With full batches (``--batch-size`` = N, q = 1) the run is a composition of Gaussian mechanisms
and the statistic is the optimal test, so the bound should approach the claim as trials grow;
with q < 1 the final-model statistic is weaker than the accountant's worst case.  The bound is
capped by the number of trials: with m evaluation trials per side it cannot exceed roughly
:math:`\log(m / 3)`.  ``epsilon=inf`` (no noise, clipping kept) shows the audit can fail.

Speed: the noise calibration (a bisection on the accountant) is identical for every trial, so this
script memoises :func:`skdpgen.dpsgd.calibrate_subsampled_noise` with ``functools.lru_cache``;
nothing else in the training path is changed.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import skdpgen.dpsgd as dpsgd
from skdpgen.metrics import audit_synthesizer

HERE = Path(__file__).resolve().parent
DELTA = 1e-5


def datasets(n: int = 100, d: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    X[:, -1] = 0.0
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).float()
    flag = torch.zeros(n)
    without = (X, y, flag)
    xc = torch.zeros(1, d)
    xc[0, -1] = 1.0
    with_canary = (torch.cat([X, xc]), torch.cat([y, torch.zeros(1)]), torch.cat([flag, torch.ones(1)]))
    return with_canary, without


def per_example_loss(model, batch):
    x, y, canary = batch
    out = model(x).squeeze(-1)
    return torch.where(canary > 0, -10.0 * out, F.binary_cross_entropy_with_logits(out, y, reduction="none"))


def make_fit_and_score(epsilon: float, batch_size: int, epochs: float, lr: float, n_rows: int):
    def fit_and_score(dataset, seed: int) -> float:
        model = nn.Linear(dataset[0].shape[1], 1, bias=False)
        nn.init.zeros_(model.weight)
        # the sampling rate comes from the public size of the canary-free dataset, as an estimator
        # passes a rate from a (DP or public) row count: identical on both neighbours
        cfg = dpsgd.DPSGDConfig(epsilon=epsilon, delta=DELTA, epochs=epochs, batch_size=batch_size,
                                max_grad_norm=1.0, lr=lr, optimizer="sgd",
                                accountant="prv", check_model=False,
                                sample_rate=min(1.0, batch_size / n_rows))
        dpsgd.train_dpsgd(model, per_example_loss, dataset, cfg, generator=torch.Generator().manual_seed(seed))
        return float(model.weight.detach()[0, -1])

    return fit_and_score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 4.0, 8.0])
    ap.add_argument("--trials", type=int, default=600, help="trainings per dataset")
    ap.add_argument("--batch-size", type=int, default=100, help="100 = full batch (q = 1)")
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--no-noise-trials", type=int, default=100, help="trials of the epsilon=inf check (0: skip)")
    ap.add_argument("--out", type=Path, default=HERE / "_out" / "audit_dpsgd.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dpsgd.calibrate_subsampled_noise = functools.lru_cache(maxsize=None)(dpsgd.calibrate_subsampled_noise)
    d_with, d_without = datasets()
    n_rows = len(d_without[0])
    runs = [(e, args.trials) for e in args.epsilons]
    if args.no_noise_trials:
        runs.append((math.inf, args.no_noise_trials))
    rows = []
    for eps, trials in runs:
        start = time.perf_counter()
        fs = make_fit_and_score(eps, args.batch_size, args.epochs, args.lr, n_rows)
        res = audit_synthesizer(fs, d_with, d_without, n_trials=trials, delta=DELTA,
                                claimed_epsilon=eps if math.isfinite(eps) else None, random_state=0)
        row = {"claimed_epsilon": eps if math.isfinite(eps) else "inf", "delta": DELTA, "trials_per_side": trials,
               "batch_size": args.batch_size, "sample_rate": min(1.0, args.batch_size / n_rows),
               "epochs": args.epochs, "lr": args.lr, "epsilon_lower_bound": res.epsilon_lower_bound,
               "consistent": res.consistent, "details": res.details, "seconds": time.perf_counter() - start}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("claimed_epsilon", "trials_per_side", "sample_rate",
                                               "epsilon_lower_bound", "seconds")}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    # recorded figures reproduce bit for bit: the privacy noise follows the seeds (public data; never
    # for a real release, see skdpgen.set_config); worker processes inherit the variable
    os.environ.setdefault("SKDPGEN_REPRODUCIBLE_NOISE", "1")
    main()
