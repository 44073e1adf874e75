"""DirichletFeatureSelector: Dirichlet feature importance (Q-FIT) as a scikit-learn feature selector."""

from __future__ import annotations

import copy
import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.feature_selection import SelectorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn
from torch.nn import functional as F

from .._config import fresh_noise, privacy_seed
from .._torch import (
    PortableStateMixin,
    derive_seeds,
    make_linear,
    resolve_device,
    torch_generator,
    with_torch_threads,
)
from ..base import fresh_fit
from ..privacy import ADD_REMOVE, PrivacyLedger, PrivacyRelease
from . import _common as C
from .dirichlet import ALPHA_MIN, DirichletGate, dirichlet_kl_torch, sample_dirichlet
from .networks import is_sklearn_mlp, mlp_to_torch

__all__ = ["DirichletFeatureSelector"]


def _mlp(sizes: list[int], generator: torch.Generator, device) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(make_linear(a, b, generator, device))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DirichletFeatureSelector(PortableStateMixin, SelectorMixin, BaseEstimator):
    r"""Feature importance and selection with a Dirichlet over the input features (Q-FIT).

    A variational Dirichlet :math:`q(s) = \mathrm{Dir}(\alpha)` over the :math:`D` input features
    multiplies the inputs of a network, :math:`\tilde x = x \odot D s` (mean 1), and is learned by
    maximising :math:`\sum_i \mathbb{E}_q[\log p(y_i \mid \tilde x_i)] -
    \mathrm{KL}(\mathrm{Dir}(\alpha)\,\|\,\mathrm{Dir}(\alpha_0\mathbf 1))` with reparameterised
    samples.  The global importance of feature :math:`d` is the posterior mean
    :math:`\pi_d = \alpha_d / \sum_j \alpha_j` (``feature_importances_``, a probability vector: the
    importances of two models are comparable, e.g. with :func:`dirichlet_kl`).  Features that
    help predict get mass; useless ones lose it, since the Dirichlet budget is shared.

    With ``amortized=True`` an importance network :math:`a_\phi(x)` outputs per-sample
    concentrations :math:`\alpha(x) = \mathrm{softplus}(a_\phi(x))`, trained with the same
    likelihood and a per-sample KL to the prior; :meth:`local_importances` returns
    :math:`\alpha(x) / \sum_j \alpha_j(x)` for new rows.

    ``estimator=None``: a small ReLU network (``hidden``) is trained jointly with the gate on
    standardised inputs, so that interactions (XOR) are found.  ``estimator`` a fitted
    :class:`~sklearn.neural_network.MLPClassifier`/``MLPRegressor`` or a torch module taking
    ``(n, D)`` inputs: the model is frozen and only the gate (and the importance network) learn,
    on the raw inputs the model was trained on; the importances then explain THAT model.  An
    unfitted MLP is first fitted (a clone) on ``X, y``.  As with
    :class:`~skdpgen.DirichletPruner`, :func:`~sklearn.base.clone` keeps a fitted ``estimator``.

    Measured limitation: on a frozen model the multiplicative gate measures the dependence of the
    predictions on the SCALE of each feature, not on its presence; on XOR and orange-skin data
    (``benchmarks/bench_pruning_features.py``) it rarely recovered the relevant features of a
    fitted MLP, where ``permutation_importance`` and the own-network mode did.

    As a selector, :meth:`transform` keeps the ``n_features_to_select`` most important columns
    (:meth:`get_support`, :meth:`get_feature_names_out` come from
    :class:`~sklearn.feature_selection.SelectorMixin`).

    Parameters
    ----------
    estimator : None, MLPClassifier, MLPRegressor or torch.nn.Module, default=None
        The model to explain (see above).
    n_features_to_select : int, float or None, default=None
        Features kept by :meth:`transform`: a count, a fraction of the features (float in (0, 1]),
        or ``None`` for half of them (at least one).
    hidden : tuple of int, default=(64, 64)
        Hidden widths of the own network (``estimator=None``).
    amortized : bool, default=True
        Also train the importance network for :meth:`local_importances`.
    amortized_hidden : tuple of int, default=(32,)
        Hidden widths of the importance network.
    prior_concentration : float, default=0.5
        :math:`\alpha_0` of the symmetric Dirichlet prior.
    init_concentration : float, default=1.0
        Initial :math:`\alpha_d`.
    kl_weight : float, default=1.0
        Each row's loss carries ``kl_weight / N`` times the global KL and ``kl_weight / N`` times
        its amortised KL (1: the evidence lower bound for the global gate; the amortised KL is
        down-weighted the same way, a full per-row KL pulled the local importances to uniform).
    n_samples : int, default=1
        Dirichlet samples per row and step (Monte Carlo average of the likelihood).
    epochs : float, default=60
        Passes over the data (own network and gate are trained together).
    batch_size : int, default=64
    learning_rate : float, default=0.01
        Adam learning rate.
    classes : array-like or None, default=None
        The public label set of a classification target, for the own network
        (``estimator=None``; a given estimator has its own classes).  With ``classes`` the task is
        classification whatever the values of ``y``, and labels of ``y`` outside ``classes``
        raise ``ValueError`` (under a finite ``epsilon`` the message names no label).  Without
        ``classes``: under a finite ``epsilon`` the task is regression and ``y`` must have a float
        dtype (integer, boolean or string labels raise: declare ``classes``), since the task must
        not depend on private values; without privacy it is inferred from ``y``
        (``type_of_target``).
    epsilon : float or None, default=None
        With a float, the gate, the importance network and the own network are trained with
        DP-SGD (:func:`skdpgen.dpsgd.train_dpsgd`); see Notes.
    delta : float, default=1e-5
    max_grad_norm : float, default=1.0
    accountant : {"prv", "rdp"}, default="prv"
    ledger : PrivacyLedger or None
    random_state : int, RandomState or None
        Seeds initialisation, the minibatches of non-private training and the Dirichlet samples; the
        privacy mechanisms' randomness
        (noise, Poisson batches, noisy counts) is fresh OS entropy at
        every fit unless ``skdpgen.set_config(reproducible_noise=True)`` (tests only).
    device : {"auto", "cpu", "cuda"} or torch.device, default="auto"
    verbose : int, default=0
    n_threads : int or None, default=1

    Attributes
    ----------
    feature_importances_ : ndarray of shape (n_features_in_,)
        Posterior mean importances (sum to 1).
    concentrations_ : ndarray of shape (n_features_in_,)
        The learned :math:`\alpha` (pass to :func:`dirichlet_kl`).
    ranking_ : ndarray of shape (n_features_in_,)
        1 for the most important feature.
    n_features_to_select_ : int
    network_ : torch.nn.Module
        The network whose inputs are gated (own network, or the frozen copy of ``estimator``).
    estimator_ : estimator or None
    importance_network_ : torch.nn.Sequential or None
    task_ : str
    classes_ : ndarray or None
    n_features_in_, feature_names_in_
    privacy_report_ : dict
        With ``epsilon``.

    Notes
    -----
    **Privacy** (with ``epsilon``; neighbouring relation: add/remove one row).  1% of the budget
    estimates the row count (Gaussian mechanism); one DP-SGD run trains everything that learns
    from the rows (gate, importance network, own network) for the rest.  Without ``epsilon`` the
    own network's inputs are standardised with the data's mean and standard deviation (and a
    regression target likewise); with ``epsilon`` nothing is estimated from the rows: scale the
    features beforehand with public bounds.  A given ``estimator``'s weights are the user's (not
    covered), and an unfitted one is refused with ``epsilon``.

    References
    ----------
    Adamczewski, K., Li, F. and Park, M. "Q-FIT: The Quantifiable Feature Importance Technique for
    Explainable Machine Learning." arXiv:2010.13872.
    Adamczewski, K. and Park, M. "Dirichlet Pruning for Neural Network Compression." AISTATS 2021.
    Chen, J., Song, L., Wainwright, M. and Jordan, M. "Learning to Explain: An Information-Theoretic
    Perspective on Model Interpretation." ICML 2018 (the XOR and orange-skin benchmarks).

    Examples
    --------
    >>> import numpy as np
    >>> from skdpgen import DirichletFeatureSelector
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 10))
    >>> y = (X[:, 0] * X[:, 1] > 0).astype(int)  # XOR of the signs of two features
    >>> sel = DirichletFeatureSelector(n_features_to_select=2, random_state=0).fit(X, y)  # doctest: +SKIP
    >>> np.flatnonzero(sel.get_support())  # doctest: +SKIP
    array([0, 1])
    """

    _parameter_constraints: dict = {
        "estimator": "no_validation",
        "n_features_to_select": [None, Interval(Integral, 1, None, closed="left"),
                                 Interval(Real, 0, 1, closed="right")],
        "hidden": [tuple, list],
        "amortized": ["boolean"],
        "amortized_hidden": [tuple, list],
        "prior_concentration": [Interval(Real, 0, None, closed="neither")],
        "init_concentration": [Interval(Real, 0, None, closed="neither")],
        "kl_weight": [Interval(Real, 0, None, closed="left")],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "classes": [None, "array-like"],
        "epsilon": [None, Interval(Real, 0, math.inf, closed="right")],
        "delta": [Interval(Real, 0, 1, closed="neither")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither")],
        "accountant": [StrOptions({"prv", "rdp"})],
        "ledger": [None, PrivacyLedger],
        "random_state": ["random_state"],
        "device": [StrOptions({"auto", "cpu", "cuda"}), torch.device],
        "verbose": ["verbose"],
        "n_threads": [None, Options(Integral, {-1}), Interval(Integral, 1, None, closed="left")],
    }

    neighbouring = ADD_REMOVE

    def __init__(self, estimator=None, n_features_to_select=None, *, hidden=(64, 64), amortized=True,
                 amortized_hidden=(32,), prior_concentration=0.5, init_concentration=1.0, kl_weight=1.0, n_samples=1,
                 epochs=60, batch_size=64, learning_rate=0.01, classes=None, epsilon=None, delta=1e-5,
                 max_grad_norm=1.0, accountant="prv", ledger=None, random_state=None, device="auto", verbose=0,
                 n_threads=1):
        self.estimator = estimator
        self.n_features_to_select = n_features_to_select
        self.hidden = hidden
        self.amortized = amortized
        self.amortized_hidden = amortized_hidden
        self.prior_concentration = prior_concentration
        self.init_concentration = init_concentration
        self.kl_weight = kl_weight
        self.n_samples = n_samples
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.classes = classes
        self.epsilon = epsilon
        self.delta = delta
        self.max_grad_norm = max_grad_norm
        self.accountant = accountant
        self.ledger = ledger
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.n_threads = n_threads

    __sklearn_clone__ = C.clone_keeping_fitted

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.non_deterministic = fresh_noise(self.epsilon)  # fresh privacy noise at every fit
        return tags

    # ------------------------------------------------------------------ fitting
    @fresh_fit
    @with_torch_threads
    def fit(self, X, y):
        """Learn the Dirichlet importances of the features of ``X`` for predicting ``y``; returns self."""
        self._validate_params()
        seeds = derive_seeds(self.random_state, 6)
        device = resolve_device(self.device)
        private = self.epsilon is not None
        strict = private and math.isfinite(float(self.epsilon))
        # DP-SGD's Poisson batches and noise: fresh entropy unless reproducible_noise (privacy_seed)
        seeds[1] = privacy_seed(seeds[1], strict)
        owner = f"{type(self).__name__}#{id(self):x}"
        X_arr, y_arr = validate_data(self, X, y, reset=True, multi_output=True, dtype=(np.float64, np.float32),
                                     y_numeric=False)
        n, d = X_arr.shape
        est = self.estimator
        self.classes_ = None
        self._x_mean, self._x_scale = np.zeros(d), np.ones(d)
        if est is None:
            task, Yt = self._own_targets(y_arr, strict, device)
            if not private:
                self._x_mean = X_arr.mean(0)
                scale = X_arr.std(0)
                self._x_scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(self._x_mean)), scale, 1.0)
            n_out = len(self.classes_) if task == "multiclass" else Yt.shape[1]
            net = _mlp([d, *[int(h) for h in self.hidden], n_out], torch_generator(seeds[4], device), device)
            own = True
            self.estimator_ = None
        elif is_sklearn_mlp(est):
            if not C.is_fitted(est):
                if private:
                    raise ValueError("epsilon is set but the estimator is not fitted: training it on the private "
                                     "rows would not be private; pass a model trained on public data")
                est = clone(est).fit(X_arr, y_arr)
            else:
                C.check_fitted_mlp(est, d)
                est = copy.deepcopy(est)
            net = mlp_to_torch(est, device=device)
            task, Yt = C.mlp_targets(est, y_arr, device, private=strict)
            if hasattr(est, "classes_"):
                self.classes_ = est.classes_
            own = False
            self.estimator_ = est
        elif isinstance(est, nn.Module):
            net = copy.deepcopy(est).to(device).float()
            task, Yt, classes = C.torch_targets(net, X_arr, y_arr, device, "auto", private=strict)
            self.classes_ = classes
            own = False
            self.estimator_ = est
        else:
            raise TypeError("estimator must be None, a scikit-learn MLPClassifier/MLPRegressor or a torch.nn.Module "
                            f"(a differentiable model), got {type(est).__name__}")
        self.task_ = task
        if not own:
            net.requires_grad_(False)
            net.eval()
        Xt = torch.as_tensor(self._scale(X_arr), dtype=torch.float32, device=device)

        # ---- budget
        releases: list[PrivacyRelease] = []
        reservation = None
        n_hat = float(n)
        if private:
            budget = C.plan_budget(float(self.epsilon), float(self.delta), [1.0])
            count_release = C.count_release(budget.count_epsilon, budget.count_delta,
                                            name=f"{type(self).__name__}.row_count", owner=owner)
            planned = PrivacyRelease(name=f"{type(self).__name__}.dpsgd", mechanism="subsampled_gaussian",
                                     epsilon=budget.run_epsilon[0], delta=budget.run_delta[0], owner=owner)
            # the whole plan, reserved before any noise; settled with what was released (C.settling)
            reservation = C.reserve(self, [count_release, planned])
            n_hat = C.private_count(n, count_release, seeds[2], floor=self.batch_size)
            releases.append(count_release)
            self.n_samples_estimate_ = n_hat

        with C.settling(self.ledger, reservation, releases):  # the run recorded once, here
            # ---- model: gate (+ importance network) (+ own network)
            model = nn.ModuleDict({"gate": DirichletGate(d, self.init_concentration, device=device)})
            if self.amortized:
                model["local"] = _mlp([d, *[int(h) for h in self.amortized_hidden], d],
                                      torch_generator(seeds[5], device), device)
            if own:
                model["net"] = net
            prior = float(self.prior_concentration)
            kl_scale = float(self.kl_weight) / n_hat
            kl_local = kl_scale
            n_mc = int(self.n_samples)
            gamma_gen = torch_generator(seeds[0], device)

            def forward(m, xb, alpha):  # mean NLL over n_mc samples of the gate, per row
                b = xb.shape[0]
                s = sample_dirichlet(alpha.unsqueeze(1).expand(b, n_mc, d), gamma_gen) * d
                xs = xb.unsqueeze(1) * s  # (B, S, D): the own net sees (B, S, D) (S calls per row)
                out = m["net"](xs) if own else net(xs.reshape(b * n_mc, d))
                out = out.reshape(b * n_mc, -1)
                return out

            def loss(m, batch):
                xb, yb = batch
                b = xb.shape[0]
                yr = yb if n_mc == 1 else yb.repeat_interleave(n_mc, 0)
                alpha = m["gate"](b)
                nll = C.per_example_nll(forward(m, xb, alpha), yr, task).view(b, n_mc).mean(1)
                total = nll + kl_scale * dirichlet_kl_torch(alpha, torch.full_like(alpha, prior))
                if "local" in m:
                    a_loc = F.softplus(m["local"](xb)) + ALPHA_MIN
                    nll_loc = C.per_example_nll(forward(m, xb, a_loc), yr, task).view(b, n_mc).mean(1)
                    total = total + nll_loc + kl_local * dirichlet_kl_torch(a_loc, torch.full_like(a_loc, prior))
                return total

            if private:
                cfg = C.dp_config(budget.run_epsilon[0], budget.run_delta[0], epochs=self.epochs,
                                  batch_size=self.batch_size, n_hat=n_hat, max_grad_norm=self.max_grad_norm,
                                  accountant=self.accountant, lr=self.learning_rate, verbose=self.verbose)
                self.dpsgd_ = C.run_dpsgd(model, loss, (Xt, Yt), cfg, generator=torch_generator(seeds[1], device),
                                          owner=owner, name=f"{type(self).__name__}.dpsgd", releases=releases)
                self.privacy_report_ = C.make_report(
                    releases, self.epsilon, self.delta,
                    "DP: the feature concentrations, the importance network and the own network. Not covered: the "
                    "weights of a given estimator (trained by the user).")
            else:
                C.train_plain(model, loss, (Xt, Yt), epochs=self.epochs, batch_size=self.batch_size,
                              lr=self.learning_rate, generator=torch_generator(seeds[1], device))
        model.eval()
        model.requires_grad_(False)
        alpha = model["gate"].concentration().double().cpu().numpy()
        self.concentrations_ = alpha
        self.feature_importances_ = alpha / alpha.sum()
        order = np.argsort(-self.feature_importances_, kind="stable")
        self.ranking_ = np.empty(d, dtype=np.int64)
        self.ranking_[order] = np.arange(1, d + 1)
        k = self.n_features_to_select
        if k is None:
            k = max(1, d // 2)
        elif isinstance(k, Real) and not isinstance(k, Integral):
            k = max(1, int(math.floor(k * d + 0.5)))
        self.n_features_to_select_ = int(min(k, d))
        self.network_ = model["net"] if own else net
        self.importance_network_ = model["local"] if self.amortized else None
        self._gate = model["gate"]
        return self

    def _own_targets(self, y, strict: bool, device) -> tuple[str, torch.Tensor]:
        """``(task, target tensor)`` of the own network; sets ``classes_`` for classification.

        With ``classes``: classification, always; labels of ``y`` outside ``classes`` raise.
        Without, under a finite ``epsilon`` (``strict``): regression, and ``y`` must have a float
        dtype (labels raise, asking for ``classes=``); the task never depends on the values of
        ``y``.  Otherwise (no privacy) the task is inferred from ``y`` with ``type_of_target``.
        """
        y = np.asarray(y)
        if self.classes is not None:
            if y.ndim == 2 and y.shape[1] == 1:
                y = y.ravel()
            if y.ndim != 1:
                raise ValueError(f"classes= declares a classification target, which needs one label per row; y has "
                                 f"shape {y.shape}")
            enc = LabelEncoder().fit(np.asarray(self.classes).ravel())
            if len(enc.classes_) < 2:
                raise ValueError(f"classes must hold at least 2 labels, got {enc.classes_.tolist()}")
            unknown = C.labels_not_in(y, enc.classes_)
            if unknown.size:
                raise ValueError(f"y has {C.describe_labels(unknown, strict)} not in classes={enc.classes_.tolist()}")
            self.classes_ = enc.classes_
            return "multiclass", torch.as_tensor(enc.transform(y).astype(np.int64), device=device)
        if strict:
            if y.dtype.kind != "f":
                raise ValueError("with a finite epsilon the task is not read from the private y: for classification "
                                 "pass the public label set as classes=; without classes= y is a regression target "
                                 f"and must have a float dtype (got {y.dtype})")
            return "regression", torch.as_tensor(y.reshape(len(y), -1).astype(np.float32), device=device)
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind in ("binary", "multiclass"):
            enc = LabelEncoder().fit(y.reshape(-1))
            self.classes_ = enc.classes_
            return "multiclass", torch.as_tensor(enc.transform(y.reshape(-1)).astype(np.int64), device=device)
        if kind in ("continuous", "continuous-multioutput", "multiclass-multioutput", "multilabel-indicator"):
            Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
            if self.epsilon is None:  # epsilon=inf: no data-derived scaling either (same code as private)
                mu, sd = Y.mean(0), Y.std(0)
                Y = (Y - mu) / np.where(sd > 0, sd, 1.0)
            return "regression", torch.as_tensor(Y.astype(np.float32), device=device)
        raise ValueError(f"unsupported target type {kind!r}")

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((np.asarray(X, dtype=np.float64) - self._x_mean) / self._x_scale)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "feature_importances_")

    # ------------------------------------------------------------------ using the fit
    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self)
        return self.ranking_ <= self.n_features_to_select_

    @with_torch_threads
    def local_importances(self, X) -> np.ndarray:
        r"""Per-sample importances :math:`\alpha(x) / \sum_j \alpha_j(x)` from the importance network.

        Returns an array of shape (n_samples, n_features_in_) whose rows sum to one.
        """
        check_is_fitted(self)
        if self.importance_network_ is None:
            raise AttributeError("local importances need amortized=True")
        X_arr = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        dev = next(self.importance_network_.parameters()).device
        Xt = torch.as_tensor(self._scale(X_arr), dtype=torch.float32, device=dev)
        with torch.no_grad():
            a = (F.softplus(self.importance_network_(Xt)) + ALPHA_MIN).double().cpu().numpy()
        return a / a.sum(1, keepdims=True)
