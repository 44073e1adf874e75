"""Pieces shared by the pruner and the feature selector: targets, losses, training loops, budget."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from .._config import privacy_seed
from ..dpsgd import DPSGDConfig, DPSGDResult, train_dpsgd
from ..privacy import ADD_REMOVE, PrivacyLedger, PrivacyRelease, gaussian_mechanism, gdp_mu
from ..privacy.ledger import Reservation

# share of the budget spent on a DP estimate of the row count (it sets the sampling rate and the
# 1/N weight of the KL term, both released)
COUNT_SHARE = 0.01

TASKS = ("multiclass", "binary", "multilabel", "regression", "poisson")


def per_example_nll(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Negative log-likelihood of each row (shape (B,)) for the output ``out`` of a network."""
    if task == "multiclass":
        return F.cross_entropy(out, y, reduction="none")
    if task in ("binary", "multilabel"):
        return F.binary_cross_entropy_with_logits(out, y, reduction="none").sum(1)
    if task == "poisson":  # out is the log-rate (scikit-learn's MLPRegressor(loss="poisson") applies exp in predict)
        return (out.exp() - y * out).reshape(out.shape[0], -1).sum(1)
    return 0.5 * (out - y).pow(2).reshape(out.shape[0], -1).sum(1)


def is_fitted(estimator) -> bool:
    try:
        check_is_fitted(estimator)
    except Exception:  # NotFittedError, or a TypeError for a non-estimator
        return False
    return True


def clone_keeping_fitted(self):
    """``__sklearn_clone__`` of a meta-estimator whose ``estimator`` may be a fitted network.

    A fitted ``estimator`` (or a torch module) is deep-copied instead of being reset, so that
    ``GridSearchCV`` prunes/explains the SAME trained network in every fold (as with
    ``SelectFromModel(prefit=True)``); an unfitted one is cloned as usual.
    """
    from sklearn.base import _clone_parametrized

    est = self.estimator
    new = _clone_parametrized(self)
    if isinstance(est, nn.Module) or (est is not None and is_fitted(est)):
        new.estimator = copy.deepcopy(est)
    return new


def n_minibatches(n: int, batch_size: int, epochs: float) -> int:
    """Steps of :func:`iterate_minibatches`: ``epochs`` passes of ``ceil(n / batch_size)`` batches."""
    return max(1, round(epochs * max(1, math.ceil(n / batch_size))))


def iterate_minibatches(n: int, batch_size: int, epochs: float, generator: torch.Generator, device):
    """Shuffled minibatch indices for ``epochs`` passes (a fractional last pass is cut short)."""
    total = n_minibatches(n, batch_size, epochs)
    done = 0
    while done < total:
        perm = torch.randperm(n, generator=generator, device=generator.device).to(device)
        for start in range(0, n, batch_size):
            if done >= total:
                return
            yield perm[start:start + batch_size]
            done += 1


def train_plain(model: nn.Module, per_example_loss: Callable, data: tuple[torch.Tensor, ...], *, epochs: float,
                batch_size: int, lr: float, generator: torch.Generator, weight_decay: float = 0.0,
                params=None, scheduler: Callable | None = None) -> int:
    """Non-private minibatch Adam on the mean of ``per_example_loss``; returns the number of steps.

    ``scheduler``: ``factory(optimizer, n_steps)`` as in :class:`~skdpgen.dpsgd.DPSGDConfig`,
    stepped after every optimizer step.
    """
    params = [p for p in (model.parameters() if params is None else params) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    n = int(data[0].shape[0])
    sched = None if scheduler is None else scheduler(opt, n_minibatches(n, batch_size, epochs))
    steps = 0
    for idx in iterate_minibatches(n, batch_size, epochs, generator, data[0].device):
        opt.zero_grad(set_to_none=True)
        per_example_loss(model, tuple(t[idx] for t in data)).mean().backward()
        opt.step()
        if sched is not None:
            sched.step()
        steps += 1
    return steps


@dataclass
class BudgetPlan:
    """How ``(epsilon, delta)`` is split: the row count, then the DP-SGD runs (basic composition)."""

    count_epsilon: float
    count_delta: float
    run_epsilon: list[float]
    run_delta: list[float]


def plan_budget(epsilon: float, delta: float, shares: list[float]) -> BudgetPlan:
    eps_rest, delta_rest = epsilon * (1 - COUNT_SHARE), delta * (1 - COUNT_SHARE)
    return BudgetPlan(epsilon * COUNT_SHARE, delta * COUNT_SHARE, [eps_rest * s for s in shares],
                      [delta_rest * s for s in shares])


def count_release(epsilon: float, delta: float, name: str, owner: str) -> PrivacyRelease:
    """The Gaussian release of the row count (sensitivity 1 under add/remove one row), before any noise."""
    mu = gdp_mu(epsilon, delta)
    noise_std = 0.0 if math.isinf(mu) else 1.0 / mu
    return PrivacyRelease.gaussian(name, mu=mu, delta=delta, sensitivity=1.0, noise_std=noise_std, owner=owner)


def private_count(n: int, release: PrivacyRelease, seed: int, floor: float) -> float:
    """The noisy row count of ``release`` (see :func:`count_release`), floored at ``floor``."""
    noise_std = float(release.noise_std)
    rng = np.random.default_rng(privacy_seed(seed, noise_std > 0))
    noisy = float(gaussian_mechanism(np.array([float(n)]), noise_std, rng)[0])
    return max(float(floor), noisy, 1.0)


def reserve(estimator, planned: list[PrivacyRelease]) -> Reservation | None:
    """Reserve the fit's ``planned`` releases in ``estimator.ledger`` (if any) before any noise is drawn.

    A refusal raises :class:`~skdpgen.exceptions.PrivacyBudgetExceeded`; the estimators' ``fit`` is
    decorated with :func:`~skdpgen.base.fresh_fit`, so it leaves them unfitted.
    """
    if estimator.ledger is None:
        return None
    return estimator.ledger.reserve(planned)


@contextmanager
def settling(ledger: PrivacyLedger | None, reservation: Reservation | None, releases: list[PrivacyRelease]):
    """On leaving the block (also by an exception), settle ``reservation`` with ``releases`` as they are then.

    ``releases`` is the fit's list of what was released, filled in by :func:`run_dpsgd`.
    """
    try:
        yield
    finally:
        if reservation is not None:
            ledger.settle(reservation, releases)


def dp_config(epsilon: float, delta: float, *, epochs: float, batch_size: int, n_hat: float, max_grad_norm: float,
              accountant: str, lr: float, verbose: int, weight_decay: float = 0.0,
              scheduler: Callable | None = None) -> DPSGDConfig:
    return DPSGDConfig(epsilon=epsilon, delta=delta, epochs=float(epochs), batch_size=int(batch_size),
                       max_grad_norm=None if math.isinf(epsilon) else float(max_grad_norm), accountant=accountant,
                       lr=float(lr), weight_decay=weight_decay, verbose=verbose, scheduler=scheduler,
                       sample_rate=min(1.0, int(batch_size) / n_hat))


def run_dpsgd(model, loss, data, config: DPSGDConfig, *, generator, owner: str, name: str,
              releases: list[PrivacyRelease]) -> DPSGDResult:
    """:func:`train_dpsgd` without a ledger; appends its release to ``releases``, even when it fails.

    The fit reserved all its runs in its ledger beforehand (:func:`reserve`) and settles the
    reservation with ``releases`` (:func:`settling`): each run is recorded once, at that level.
    A failed run is entered at its planned budget (a partly trained model is a release too).
    """
    try:
        result = train_dpsgd(model, loss, data, config, generator=generator, ledger=None, owner=owner, name=name)
    except BaseException:
        releases.append(PrivacyRelease(name=name, mechanism="subsampled_gaussian", epsilon=config.epsilon,
                                       delta=config.delta, owner=owner))
        raise
    releases.append(result.release)
    return result


def make_report(releases: list[PrivacyRelease], epsilon: float, delta: float, note: str) -> dict:
    own = PrivacyLedger()
    own.record(*releases)
    eps, dlt = own.spent()
    return {
        "epsilon": eps,
        "delta": dlt,
        "target_epsilon": float(epsilon),
        "target_delta": float(delta),
        "neighbouring": ADD_REMOVE,
        "accounting": "row count: Gaussian DP; DP-SGD: Opacus accountant (Poisson-subsampled Gaussian); "
                      "composed by the ledger",
        "scope": note,
        "releases": [r.to_dict() for r in releases],
    }


def torch_outputs(net: nn.Module, X: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """``net(X)`` in eval mode, in batches, without gradients."""
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            return torch.cat([net(X[i:i + batch_size]) for i in range(0, max(len(X), 1), batch_size)])
    finally:
        net.train(was)


def describe_labels(values, private: bool) -> str:
    """A few offending labels for an error message; under a finite epsilon none are printed (they are private)."""
    if private:
        return "some labels"
    vals = np.asarray(values, dtype=object).ravel()
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in vals[:3])
    return f"labels {shown}{', ...' if len(vals) > 3 else ''}"


def labels_not_in(y, classes) -> np.ndarray:
    """The distinct values of ``y`` that are not in ``classes`` (values of another type count as absent)."""
    y = np.asarray(y).ravel()
    out = y[~np.isin(y, np.asarray(classes))]
    try:
        return np.unique(out)
    except TypeError:  # mixed types in an object array
        return out


# a classifier's outputs must be logits: these final activations would be applied twice (the loss
# applies log-softmax, predict_proba softmax)
_PROBABILITY_OUTPUTS = (nn.Softmax, nn.Sigmoid)
_NO_OPS = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)


def check_fitted_mlp(est, n_features: int) -> None:
    """Raise a clear ``ValueError`` when a fitted scikit-learn MLP does not match ``X`` or its own parameters.

    A fitted estimator is used as it is: parameters set after its fit (e.g. by a grid over
    ``estimator__hidden_layer_sizes``) are not applied to its weights, so a mismatch is refused
    rather than reported as what was pruned.
    """
    sizes = est.hidden_layer_sizes
    sizes = (int(sizes),) if np.ndim(sizes) == 0 else tuple(int(s) for s in sizes)
    trained = tuple(int(c.shape[1]) for c in est.coefs_[:-1])
    if sizes != trained:
        raise ValueError(f"the fitted {type(est).__name__} has hidden layers {trained} but hidden_layer_sizes="
                         f"{sizes}: parameters set after fitting (e.g. a grid over estimator__*) are not applied to "
                         "a fitted network; pass an unfitted estimator to have it fitted on X, y")
    expected = getattr(est, "n_features_in_", None)
    if expected is not None and int(expected) != int(n_features):
        raise ValueError(f"X has {n_features} features, but the estimator {type(est).__name__} was fitted with "
                         f"{expected} features")


def check_network_accepts(net: nn.Module, example: torch.Tensor) -> torch.Tensor:
    """``net(example)`` without gradients; a shape mismatch becomes a clear ``ValueError``, not torch's message."""
    try:
        with torch.no_grad():
            return net(example)
    except RuntimeError as exc:
        raise ValueError(f"the network cannot be applied to X (one row has shape {tuple(example.shape[1:])}): "
                         f"{exc}") from None


def check_logit_outputs(net: nn.Module) -> None:
    """Raise ``ValueError`` when a classifier network ends in ``nn.Softmax`` or ``nn.Sigmoid`` (not logits).

    Looks through nested ``nn.Sequential`` containers and trailing identity/dropout modules;
    ``nn.LogSoftmax`` is accepted (log-softmax is idempotent, softmax of it is the probabilities).
    """
    last = net
    while isinstance(last, nn.Sequential):
        body = [m for m in last if not isinstance(m, _NO_OPS)]
        if not body:
            return
        last = body[-1]
    if isinstance(last, _PROBABILITY_OUTPUTS):
        raise ValueError(f"the network ends in nn.{type(last).__name__}, but a classifier's outputs must be logits "
                         "(the loss applies log-softmax and predict_proba applies softmax, so probabilities would be "
                         f"transformed twice): pass the network without its final {type(last).__name__}, e.g. "
                         "net[:-1]")


def _as_numeric(y: np.ndarray) -> np.ndarray | None:
    """``y`` as a numeric array, or ``None`` when it holds non-numeric values (strings)."""
    if y.dtype.kind in "biuf":
        return y
    if y.dtype.kind == "O":
        try:
            return y.astype(np.float64)
        except (TypeError, ValueError):
            return None
    return None


def torch_targets(net: nn.Module, X_arr: np.ndarray, y_arr: np.ndarray, device, loss: str, private: bool = False):
    """``(task, target tensor, classes or None)`` of a torch network; ``loss``: auto, classification, regression.

    ``"auto"`` decides from shapes only (public): classification when ``y`` is 1-D and the network
    has 2 or more outputs, regression otherwise.  A classifier needs integer labels in
    ``[0, n_outputs)`` (the classes are ``0..n_outputs-1``, public: the network's outputs) and
    logits as outputs (:func:`check_logit_outputs`).  ``private``: a finite epsilon, so error
    messages do not print label values.
    """
    was = net.training
    net.eval()
    try:
        out = check_network_accepts(net, torch.as_tensor(np.ascontiguousarray(X_arr[:1]), dtype=torch.float32,
                                                         device=device))
    finally:
        net.train(was)
    n_out = int(out.reshape(1, -1).shape[1])
    y_arr = np.asarray(y_arr)
    y_num = _as_numeric(y_arr)
    if loss == "classification" or (loss == "auto" and n_out >= 2 and y_arr.ndim == 1):
        if y_arr.ndim == 2 and y_arr.shape[1] == 1:
            y_arr, y_num = y_arr.ravel(), None if y_num is None else y_num.ravel()
        if y_arr.ndim != 1:
            raise ValueError(f"a torch classifier needs one integer class label per row; y has shape {y_arr.shape}")
        need = f"a torch classifier with {n_out} outputs needs integer class labels 0..{n_out - 1}"
        hint = ("" if loss != "auto" else " (loss='auto' reads a 1-D y as class labels when the network has 2 or more "
                "outputs; for regression give y one column per output, or set loss='regression')")
        if y_num is None:
            raise ValueError(f"{need}; y holds non-numeric labels (dtype {y_arr.dtype}): encode them first, e.g. with "
                             f"sklearn.preprocessing.LabelEncoder{hint}")
        y_num = y_num.astype(np.float64)
        bad = ~np.isfinite(y_num) | (np.mod(y_num, 1) != 0) | (y_num < 0) | (y_num >= n_out)
        if bad.any():
            shown = np.unique((y_arr if y_arr.dtype.kind in "biuf" else y_num)[bad])
            raise ValueError(f"{need}; y has {describe_labels(shown, private)} outside that range{hint}")
        check_logit_outputs(net)
        return "multiclass", torch.as_tensor(y_num.astype(np.int64), device=device), np.arange(n_out)
    if y_num is None:
        raise ValueError(f"regression targets must be numeric; y has dtype {y_arr.dtype}")
    Y = y_num.reshape(len(y_num), -1).astype(np.float32)
    if Y.shape[1] != n_out:
        raise ValueError(f"y has {Y.shape[1]} outputs but the network has {n_out}")
    return "regression", torch.as_tensor(Y, device=device), None


def mlp_targets(mlp, y, device, private: bool = False) -> tuple[str, torch.Tensor]:
    """``(task, target tensor)`` of a fitted scikit-learn MLP for labels/targets ``y``.

    The labels of a classifier must be among the MLP's ``classes_`` (for a multilabel MLP: one
    0/1 column per class); unknown labels raise ``ValueError`` (the label binarizer would encode
    them as all zeros, i.e. silently as the first class).  ``private``: a finite epsilon, so error
    messages do not print label values.
    """
    from sklearn.neural_network import MLPClassifier

    if isinstance(mlp, MLPClassifier):
        y = np.asarray(y)
        classes = mlp.classes_
        if mlp._label_binarizer.y_type_ == "multilabel-indicator":
            if y.ndim != 2 or y.shape[1] != len(classes):
                raise ValueError(f"the MLP is a multilabel classifier with {len(classes)} label columns; y has shape "
                                 f"{y.shape}")
            bad = [j for j in range(y.shape[1]) if labels_not_in(y[:, j], (0, 1)).size]
            if bad:
                where = "" if private else f" (columns {bad[:5]})"
                raise ValueError(f"a multilabel y needs 0/1 indicators in every column; y has other values{where}")
            Y = y.astype(np.float32)
        else:
            if y.ndim == 2 and y.shape[1] == 1:
                y = y.ravel()
            if y.ndim != 1:
                raise ValueError(f"the MLP is a single-output classifier; y has shape {y.shape}")
            unknown = labels_not_in(y, classes)
            if unknown.size:
                raise ValueError(f"y has {describe_labels(unknown, private)} that the MLP was not fitted on (its "
                                 f"classes_ are {classes.tolist()})")
            Y = mlp._label_binarizer.transform(y)
        if mlp.out_activation_ == "softmax":
            return "multiclass", torch.as_tensor(np.argmax(Y, axis=1), device=device)
        task = "binary" if Y.shape[1] == 1 else "multilabel"
        return task, torch.as_tensor(Y.astype(np.float32), device=device)
    Y = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
    if getattr(mlp, "loss", "squared_error") == "poisson":  # the same loss as the MLP was trained with
        if (Y < 0).any():
            raise ValueError("a Poisson MLPRegressor needs non-negative targets")
        return "poisson", torch.as_tensor(Y, device=device)
    return "regression", torch.as_tensor(Y, device=device)
