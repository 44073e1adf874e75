"""A lower bound on the cost of the Dirichlet gate fit of a scikit-learn MLP: the fit written by hand in NumPy.

The library fits the gates in torch (``DirichletPruner``); on a small MLP a torch step is
dominated by per-operation overheads (about 0.8 ms a step).  This script writes the same fit
(same ELBO, reparameterised Gamma draws with torch's implicit gradient, closed-form KL gradient,
Adam) for a ``MLPClassifier`` with two ReLU hidden layers in float32 NumPy, with the first layer's
outputs computed once, and compares its time with one epoch of scikit-learn's own training of that
network (batch 200, float64).  It is a prototype to measure what is possible, NOT the library's
code path: multiclass ReLU networks only.

Per seed: scikit-learn's digits (/16), 75/25 stratified split, ``MLPClassifier((256, 128),
max_iter=200)`` on the 1,347 training rows; gate fits ``BATCH:LR:STEPS:SAMPLES``; accuracy on the
450 test rows right after removing 50% / 70% of each hidden layer's units by the learned
posterior means (to check that the prototype ranks like the library), and the L1 ranking.

Run (one thread; about a minute)::

    OMP_NUM_THREADS=1 python benchmarks/bench_pruning_numpy_gates.py --seeds 5
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier


def trigamma(x: np.ndarray) -> np.ndarray:
    """psi'(x): six recurrence steps psi'(x) = psi'(x + 1) + 1/x^2, then the asymptotic series (rel. error < 1e-10)."""
    x = np.array(x, dtype=np.float64)
    acc = np.zeros_like(x)
    for _ in range(6):
        acc += 1.0 / (x * x)
        x += 1.0
    ix = 1.0 / x
    ix2 = ix * ix
    return acc + ix + 0.5 * ix2 + ix * ix2 * (1 / 6 - ix2 * (1 / 30 - ix2 * (1 / 42 - ix2 / 30)))


def numpy_gate_fit(mlp, X, y, batch=32, lr=1.0, steps=60, n_distinct=1, init=3.0, prior=1.0, seed=0):
    """Posterior-mean importances of the two hidden layers after ``steps`` Adam steps on the gate ELBO."""
    W = [w.astype(np.float32) for w in mlp.coefs_]
    b = [c.astype(np.float32) for c in mlp.intercepts_]
    H1 = np.maximum(X.astype(np.float32) @ W[0] + b[0], 0)  # frozen first layer, computed once
    Y = (y[:, None] == mlp.classes_[None, :]).astype(np.float32)
    k1, k2 = W[0].shape[1], W[1].shape[1]
    K = np.r_[np.full(k1, k1), np.full(k2, k2)].astype(np.float64)
    n = len(X)
    rho = np.full(k1 + k2, init + math.log(-math.expm1(-init)))
    m, v = np.zeros_like(rho), np.zeros_like(rho)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    W2T, W3T = np.ascontiguousarray(W[1].T), np.ascontiguousarray(W[2].T)
    perm, pos = rng.permutation(n), 0
    for t in range(1, steps + 1):
        if pos + batch > n:
            perm, pos = rng.permutation(n), 0
        idx = perm[pos:pos + batch]
        pos += batch
        alpha = np.logaddexp(0.0, rho) + 1e-3
        a_t = torch.from_numpy(np.broadcast_to(alpha, (n_distinct, alpha.size)).copy())
        g_t = torch._standard_gamma(a_t, generator=gen).clamp_min(1e-30)
        dg, g = torch._standard_gamma_grad(a_t, g_t).numpy(), g_t.numpy()
        scale = np.concatenate([np.repeat(k1 / g[:, :k1].sum(1, keepdims=True), k1, 1),
                                np.repeat(k2 / g[:, k1:].sum(1, keepdims=True), k2, 1)], 1)
        s = g * scale
        reps = len(idx) // n_distinct
        s1, s2 = np.tile(s[:, :k1].astype(np.float32), (reps, 1)), np.tile(s[:, k1:].astype(np.float32), (reps, 1))
        h1 = H1[idx]
        z2 = (h1 * s1) @ W[1] + b[1]
        h2 = np.maximum(z2, 0)
        z3 = (h2 * s2) @ W[2] + b[2]
        e = np.exp(z3 - z3.max(1, keepdims=True))
        dz3 = (e / e.sum(1, keepdims=True) - Y[idx]) / len(idx)
        da2 = dz3 @ W3T
        da1 = ((da2 * s2) * (z2 > 0)) @ W2T
        gs = np.concatenate([(da1 * h1).reshape(reps, n_distinct, k1).sum(0),
                             (da2 * h2).reshape(reps, n_distinct, k2).sum(0)], 1).astype(np.float64)
        gss = gs * s
        inner = np.concatenate([np.repeat(gss[:, :k1].sum(1, keepdims=True), k1, 1),
                                np.repeat(gss[:, k1:].sum(1, keepdims=True), k2, 1)], 1) / K
        grad_alpha = (scale * (gs - inner) * dg).sum(0)
        diff = alpha - prior
        a0 = np.array([alpha[:k1].sum(), alpha[k1:].sum()])
        kl_grad = diff * trigamma(alpha) - np.repeat(trigamma(a0) * np.array([diff[:k1].sum(), diff[k1:].sum()]),
                                                     [k1, k2])
        grad = (grad_alpha + kl_grad / n) / (1.0 + np.exp(-rho))
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        rho -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    alpha = np.logaddexp(0.0, rho) + 1e-3
    return [alpha[:k1], alpha[k1:]]


def pruned_accuracy(mlp, importances, rate, X, y) -> float:
    keep = [np.sort(np.argsort(-imp)[:max(1, round(len(imp) * (1 - rate)))]) for imp in importances]
    W, b = [w.copy() for w in mlp.coefs_], [c.copy() for c in mlp.intercepts_]
    for i, k in enumerate(keep):
        W[i], b[i], W[i + 1] = W[i][:, k], b[i][k], W[i + 1][k]
    h = X
    for i in range(len(W) - 1):
        h = np.maximum(h @ W[i] + b[i], 0)
    return float(np.mean(mlp.classes_[np.argmax(h @ W[-1] + b[-1], 1)] == y))


def sklearn_epoch_ms(X, y, seed: int, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        model = MLPClassifier((256, 128), max_iter=50, tol=0, n_iter_no_change=1000, random_state=seed)
        t0 = time.perf_counter()
        model.fit(X, y)
        times.append(1000 * (time.perf_counter() - t0) / model.n_iter_)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--configs", nargs="+", default=["32:1.0:60:1", "64:1.0:60:4"],
                    help="BATCH:LR:STEPS:SAMPLES_PER_BATCH")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    rows = {}
    for seed in range(args.seeds):
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
        mlp = MLPClassifier((256, 128), max_iter=200, random_state=seed).fit(Xtr, ytr)
        epoch = sklearn_epoch_ms(Xtr, ytr, seed)
        l1 = [np.abs(w).sum(0) for w in mlp.coefs_[:-1]]
        rows.setdefault("l1", []).append((math.nan, math.nan, *(pruned_accuracy(mlp, l1, r, Xte, yte)
                                                                  for r in (0.5, 0.7))))
        for cfg in args.configs:
            bs, lr, steps, ns = cfg.split(":")
            times, imp = [], None
            for r in range(args.repeats):
                t0 = time.perf_counter()
                imp = numpy_gate_fit(mlp, Xtr, ytr, int(bs), float(lr), int(steps), int(ns), seed=1000 * seed + r)
                times.append(1000 * (time.perf_counter() - t0))
            fit = float(np.median(times))
            rows.setdefault(cfg, []).append((fit, fit / epoch, *(pruned_accuracy(mlp, imp, r, Xte, yte)
                                                                 for r in (0.5, 0.7))))
            print(f"seed {seed} {cfg}: fit {fit:.1f} ms, scikit-learn epoch {epoch:.1f} ms, ratio {fit / epoch:.2f}",
                  flush=True)
    print("\n| gate fit (batch:lr:steps:samples) | fit, ms | fit / scikit-learn epoch, per seed | median ratio "
          "| accuracy, 50% removed | 70% removed |")
    print("|---|---|---|---|---|---|")
    for name, vals in rows.items():
        a = np.array(vals)
        ratios = " / ".join(f"{x:.2f}" for x in a[:, 1]) if name != "l1" else "-"
        med = f"{np.median(a[:, 1]):.2f}" if name != "l1" else "-"
        fit = f"{np.median(a[:, 0]):.1f}" if name != "l1" else "-"
        print(f"| {name} | {fit} | {ratios} | {med} | {a[:, 2].mean():.3f} | {a[:, 3].mean():.3f} |")


if __name__ == "__main__":
    main()
