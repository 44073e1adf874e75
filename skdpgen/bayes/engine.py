r"""VIPS: variational inference for conjugate-exponential models with privatised statistics.

For a conjugate-exponential model, variational Bayes touches the data only through expected
sufficient statistics (ESS) :math:`\bar s = \sum_i E_{q}[s(x_i, z_i)]`.  VIPS (Park, Foulds,
Chaudhuri & Welling 2020) clips each row's contribution to a public norm bound :math:`B`, releases
:math:`\tilde s = \bar s + N(0, \sigma^2 I)` and updates the global variational (natural)
parameters from the noisy statistics only,

.. math::

    \lambda \leftarrow (1 - \rho_t)\,\lambda + \rho_t\,(\eta_0 + c\,\tilde s),

with :math:`\rho_t = 1, c = 1` in full-batch mode and :math:`\rho_t = (\tau_0 + t)^{-\kappa}`,
:math:`c = 1/q` in stochastic mode (a Poisson minibatch of rate :math:`q` estimates the full sum
without bias: :math:`E[\sum_{i \in B} s_i] = q \sum_i s_i`, so no row count is needed).
Without privacy (``epsilon=inf``) the stochastic mode is scikit-learn's online VB instead: fixed
consecutive minibatches, :math:`c = n / |B_t|`.

This module holds the model protocol (:class:`VBModel`, :class:`ESSPiece`) and the engine
(:class:`DPVariationalBayes`, plus the mixin that the built-in estimators share).

References
----------
Park, M., Foulds, J., Chaudhuri, K. and Welling, M. "Variational Bayes in Private Settings (VIPS)."
JAIR 68, 2020.
Hoffman, M., Blei, D. and Bach, F. "Online Learning for Latent Dirichlet Allocation." NIPS 2010.
Dong, J., Roth, A. and Su, W. J. "Gaussian Differential Privacy." JRSS-B 2022.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import gen_batches
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from .._config import fresh_noise, privacy_seed
from .._torch import derive_seeds
from ..base import fresh_fit
from ..privacy import (
    ADD_REMOVE,
    PrivacyLedger,
    PrivacyRelease,
    calibrate_subsampled_noise,
    gaussian_mechanism,
    gdp_mu,
)

__all__ = ["ESSPiece", "VBModel", "DPVariationalBayes", "VIPSPlan", "plan_vips_budget"]


# ---------------------------------------------------------------------------------------------
# the model protocol


@dataclass(frozen=True)
class ESSPiece:
    """One block of the released expected sufficient statistics.

    Parameters
    ----------
    name : str
        Key of the block in the dicts that :meth:`VBModel.local_step` returns.
    size : int
        Number of entries (the block is released as a flat float64 vector).
    bound : float
        Public bound on the L2 norm of ONE row's contribution to this block, after the model's
        clipping.  The release's L2 sensitivity (add/remove one row) is
        :math:`\\sqrt{\\sum_b B_b^2}` over the blocks released together.
    static : bool, default=False
        ``True`` when the block does not depend on the global parameters (e.g.
        :math:`\\sum_i (y_i - 1/2) x_i` in logistic regression).  Full-batch mode then releases it
        once, not at every iteration.
    """

    name: str
    size: int
    bound: float
    static: bool = False


class VBModel(BaseEstimator):
    r"""Base class (and protocol) of the conjugate-exponential models that the VIPS engine fits.

    A model is a small object of hyperparameters; the fitted state lives in the estimator.
    Subclasses implement:

    ``prepare(X, y)``
        Validate the data and apply the public, row-wise clipping that makes the per-row
        contributions obey :attr:`ESSPiece.bound`; return a tuple of arrays (or CSR matrices)
        whose first axis indexes rows (the engine subsamples them).
    ``ess_pieces(n_features)``
        The released blocks (:class:`ESSPiece`), with their per-row norm bounds.
    ``init_params(n_features, rng)``
        Initial global natural parameters (a dict of arrays).
    ``local_step(data, state, rng)``
        The per-row (local) variational step for the rows in ``data`` given the current global
        ``state``; returns the SUMS over those rows of the clipped ESS contributions, one flat
        array per piece.
    ``natural_target(ess, scale)``
        :math:`\eta_0 + c\,\tilde s`: the global natural parameters implied by the (noisy)
        statistics, with ``scale`` :math:`c` (1 in full-batch mode, :math:`1/q` in stochastic mode).
    ``denoise(ess, noise_std)`` (optional)
        Post-processing of one noisy release knowing its (public) noise level, e.g. soft
        thresholding of sparse non-negative statistics.
    ``project(raw)``
        Post-processing of the running natural parameters into the usable state (e.g. projection
        of a noisy precision matrix to positive definite, of Dirichlet parameters to positive);
        returns a dict that ``local_step`` and the estimator's predictions read.

    Optional: ``score_data(data, state)`` (a float: what :meth:`DPVariationalBayes.score` returns for
    ``data = prepare(X, y)``; its meaning is the model's, e.g. a total log-likelihood bound for
    :class:`~skdpgen.bayes.LDAModel`, a mean per row for :class:`~skdpgen.bayes.LogisticModel`),
    ``needs_n_samples`` (``True`` when the fitted model needs a (DP) estimate of the number of
    rows).
    """

    #: y is required by ``prepare``
    requires_y: bool = False
    #: X must be non-negative (counts)
    positive_only: bool = False
    #: scipy sparse X accepted
    accept_sparse: bool = False
    #: with ``epsilon=inf``, ``init_params`` and ``local_step`` share one legacy
    #: ``np.random.RandomState(random_state)`` (scikit-learn's stream) instead of separate Generators
    sklearn_random_stream: bool = False

    @property
    def needs_n_samples(self) -> bool:
        return False

    def validate(self, estimator, X, y=None, reset: bool = True):
        """scikit-learn validation of ``X`` (and ``y``) for ``estimator``; returns ``(X, y)``."""
        kw = dict(accept_sparse="csr" if self.accept_sparse else False, dtype=np.float64, reset=reset)
        if self.requires_y:
            if y is None:
                raise ValueError(f"{type(self).__name__} requires y")
            X, y = validate_data(estimator, X, y, **kw)
        else:
            X = validate_data(estimator, X, **kw)
        if self.positive_only:
            check_non_negative(X, f"{type(estimator).__name__} with {type(self).__name__}")
        return X, y

    def prepare(self, X, y=None) -> tuple:
        raise NotImplementedError

    def ess_pieces(self, n_features: int) -> list[ESSPiece]:
        raise NotImplementedError

    def init_params(self, n_features: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def local_step(self, data: tuple, state: dict, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def natural_target(self, ess: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def project(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(raw)

    def denoise(self, ess: dict[str, np.ndarray], noise_std: float) -> dict[str, np.ndarray]:
        """Post-process the noisy (dynamic) statistics knowing the public ``noise_std``; default: identity."""
        return ess


# ---------------------------------------------------------------------------------------------
# the privacy plan


@dataclass(frozen=True)
class VIPSPlan:
    """How a VIPS fit spends its (epsilon, delta), fixed before any data-dependent release."""

    method: str
    mu: float                  # GDP mu of the whole fit (full-batch); nan in stochastic mode
    count_mu: float            # GDP mu of the noisy row count (0: no count)
    count_delta: float
    static_mu: float           # GDP mu of the one-off release of the static pieces (0: none)
    static_delta: float
    iter_mu: float             # GDP mu of ONE iteration's release (full-batch)
    iter_delta: float          # delta share of all the iterations together (full-batch)
    sub_epsilon: float         # target of the subsampled composition (stochastic)
    sub_delta: float


def plan_vips_budget(epsilon: float, delta: float, method: str, n_iter: int, has_static: bool,
                     count_share: float, has_dynamic: bool = True) -> VIPSPlan:
    r"""Split ``(epsilon, delta)`` between the row count, the static and the per-iteration releases.

    Full-batch: the whole fit is :math:`\mu`-GDP with :math:`\mu = \mu(\varepsilon, \delta)`;
    the count gets :math:`\mu_c = \sqrt{s}\,\mu`, and the :math:`T` iterations (plus one
    release of the static pieces, if any) get equal shares
    :math:`\mu_{it} = \sqrt{(1 - s)/(T + [\text{static}])}\,\mu`, so that
    :math:`\mu_c^2 + \mu_{static}^2 + T\mu_{it}^2 = \mu^2`; the deltas are split in proportion to
    :math:`\mu_i^2`.  A model whose statistics are all static (``has_dynamic=False``) spends the
    rest on its single static release.  Stochastic: basic composition, the count gets
    :math:`(s\varepsilon, s\delta)` and the subsampled iterations the rest.
    """
    s = float(count_share)
    if method == "batch":
        mu = gdp_mu(epsilon, delta)
        n_iter = n_iter if has_dynamic else 0
        units = n_iter + (1 if has_static else 0)
        if math.isinf(mu):
            share_c = s / 2 if s > 0 else 0.0
            d_rest = delta - share_c * delta
            return VIPSPlan(method, mu, math.inf if s > 0 else 0.0, share_c * delta,
                            math.inf if has_static else 0.0, d_rest / units if has_static else 0.0,
                            math.inf if has_dynamic else 0.0, d_rest * n_iter / units, math.nan, math.nan)
        mu_c = math.sqrt(s) * mu
        mu_unit = math.sqrt((1.0 - s) / units) * mu
        static_mu = mu_unit if has_static else 0.0
        mu_it = mu_unit if has_dynamic else 0.0

        def share(m2: float) -> float:
            return delta * m2 / mu**2

        return VIPSPlan(method, mu, mu_c, share(mu_c**2), static_mu, share(static_mu**2), mu_it,
                        share(n_iter * mu_it**2), math.nan, math.nan)
    # stochastic
    mu_c = gdp_mu(s * epsilon, s * delta) if s > 0 else 0.0
    return VIPSPlan(method, math.nan, mu_c, s * delta, 0.0, 0.0, math.nan, math.nan,
                    (1.0 - s) * epsilon, (1.0 - s) * delta)


# ---------------------------------------------------------------------------------------------
# the engine shared by DPVariationalBayes and the built-in estimators


def _vips_constraints() -> dict:
    return {
        "epsilon": [Interval(Real, 0, math.inf, closed="right")],
        "delta": [Interval(Real, 0, 1, closed="neither")],
        "learning_method": [StrOptions({"batch", "online"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "sample_rate": [None, Interval(Real, 0, 1, closed="right")],
        "learning_decay": [Interval(Real, 0.5, 1, closed="both")],
        "learning_offset": [Interval(Real, 1.0, None, closed="left")],
        "count_share": [Interval(Real, 0, 1, closed="neither")],
        "accountant": [StrOptions({"prv", "rdp"})],
        "random_state": ["random_state"],
        "ledger": [None, PrivacyLedger],
        "verbose": ["verbose"],
    }


class _VIPSMixin:
    """Runs the VIPS engine for an estimator holding the shared parameters.

    Expects the attributes ``epsilon, delta, learning_method, max_iter, batch_size, sample_rate,
    learning_decay, learning_offset, count_share, accountant, random_state, ledger, verbose``.
    Sets ``n_iter_``, ``n_steps_``, ``sample_rate_``, ``noise_std_``, ``n_samples_estimate_``,
    ``privacy_report_`` and returns the final (raw, state).
    """

    neighbouring = ADD_REMOVE

    def _owner(self) -> str:
        return f"{type(self).__name__}#{id(self):x}"

    def _run_vips(self, model: VBModel, data: tuple, n_features: int):
        eps, delta = float(self.epsilon), float(self.delta)
        method = self.learning_method
        n_rows = _n_rows(data)
        pieces = model.ess_pieces(n_features)
        names = [p.name for p in pieces]
        static = [p for p in pieces if p.static] if method == "batch" else []
        dynamic = [p for p in pieces if p not in static]
        private = math.isfinite(eps)
        # the non-private online reference walks fixed consecutive batches with the true row count
        need_count = model.needs_n_samples or (method == "online" and self.sample_rate is None and private)
        share = float(self.count_share) if need_count else 0.0
        plan = plan_vips_budget(eps, delta, method, int(self.max_iter), bool(static), share, bool(dynamic))
        seeds = derive_seeds(self.random_state, 5)
        # the privacy mechanisms' randomness (Poisson batches, noise, count) is fresh entropy (privacy_seed)
        seeds[1:3] = [privacy_seed(s, private) for s in seeds[1:3]]
        seeds[4] = privacy_seed(seeds[4], private)
        rng_init, rng_sample, rng_noise, rng_local, rng_count = (np.random.default_rng(s) for s in seeds)
        if not private and getattr(model, "sklearn_random_stream", False):
            # one legacy RandomState, drawn in scikit-learn's order (init, then each e-step)
            rng_init = rng_local = _legacy_random_state(self.random_state, seeds[0])
        owner, cls = self._owner(), type(self).__name__
        batches = None

        count_release = None
        if need_count:
            count_std = 0.0 if not private else 1.0 / plan.count_mu
            count_release = PrivacyRelease.gaussian(f"{cls}.n_samples", mu=plan.count_mu, delta=plan.count_delta,
                                                    sensitivity=1.0, noise_std=count_std, owner=owner)

        b_static = math.sqrt(sum(p.bound**2 for p in static))
        b_dyn = math.sqrt(sum(p.bound**2 for p in dynamic))
        releases: list[PrivacyRelease] = []
        if count_release is not None:
            releases.append(count_release)
        if method == "batch":
            sigma_static = b_static / plan.static_mu if static and private else 0.0
            sigma = b_dyn / plan.iter_mu if private and dynamic else 0.0
            if static:
                releases.append(PrivacyRelease.gaussian(
                    f"{cls}.static_ess", mu=plan.static_mu, delta=plan.static_delta, sensitivity=b_static,
                    noise_std=sigma_static, owner=owner))
            if dynamic:
                releases.append(PrivacyRelease.gaussian(
                    f"{cls}.ess_x{int(self.max_iter)}", mu=math.sqrt(self.max_iter) * plan.iter_mu,
                    delta=plan.iter_delta, sensitivity=b_dyn, noise_std=sigma, owner=owner))
            if self.ledger is not None:
                self.ledger.check(releases)  # raises PrivacyBudgetExceeded before anything is released
                self.ledger.record(*releases)
            n_hat = _noisy_count(n_rows, count_release, rng_count) if need_count else None
            q, n_steps, z = 1.0, int(self.max_iter), None
        else:
            if self.ledger is not None:  # placeholder for the subsampled part: its target epsilon
                placeholder = PrivacyRelease(f"{cls}.ess (planned)", "subsampled_gaussian",
                                             epsilon=plan.sub_epsilon, delta=plan.sub_delta, owner=owner)
                self.ledger.check([*releases, placeholder])
            n_hat = _noisy_count(n_rows, count_release, rng_count) if need_count else None
            if not private:
                # scikit-learn's online VB: consecutive batches (the last one smaller), every pass
                size = int(self.batch_size) if self.sample_rate is None else \
                    max(1, math.ceil(float(self.sample_rate) * n_rows - 1e-9))
                batches = list(gen_batches(n_rows, size))
                q = min(1.0, size / max(n_rows, 1))
                n_steps = int(self.max_iter) * len(batches)
            elif self.sample_rate is not None:
                q = float(self.sample_rate)
            else:
                q = min(1.0, float(self.batch_size) / max(n_hat, 1.0))
            if private:
                n_steps = int(self.max_iter) * math.ceil(1.0 / q - 1e-9)
            z = calibrate_subsampled_noise(plan.sub_epsilon, plan.sub_delta, q, n_steps,
                                           self.accountant) if private else 0.0
            sigma = z * b_dyn
            sigma_static = 0.0
            if private:
                releases.append(PrivacyRelease.subsampled(
                    f"{cls}.ess", noise_multiplier=z, sample_rate=q, steps=n_steps, delta=plan.sub_delta,
                    accountant=self.accountant, sensitivity=b_dyn, owner=owner))
            else:
                releases.append(PrivacyRelease.gaussian(f"{cls}.ess", mu=math.inf, delta=plan.sub_delta,
                                                        sensitivity=b_dyn, noise_std=0.0, owner=owner))
            if self.ledger is not None:
                self.ledger.record(*releases)

        # ----------------------------------------------------------------- the iterations
        raw = model.init_params(n_features, rng_init)
        state = model.project(raw)
        noisy_static: dict[str, np.ndarray] = {}
        for t in range(n_steps):
            if method == "online":
                rho = float((float(self.learning_offset) + t + 1) ** (-float(self.learning_decay)))
                if batches is not None:  # non-private: fixed batch, scaled by n / |B| (no privacy to keep)
                    sl = batches[t % len(batches)]
                    batch = tuple(a[sl] for a in data)
                    scale = n_rows / max(_n_rows(batch), 1)
                else:  # Poisson sampling: what the subsampled-Gaussian accounting assumes
                    idx = np.flatnonzero(rng_sample.random(n_rows) < q)
                    batch = tuple(a[idx] for a in data)
                    scale = 1.0 / q
            else:
                batch, rho, scale = data, 1.0, 1.0
            ess = model.local_step(batch, state, rng_local)
            if static and t == 0:
                flat = np.concatenate([np.ravel(ess[p.name]) for p in static])
                flat = gaussian_mechanism(flat, sigma_static, rng_noise) if sigma_static > 0 else flat
                noisy_static = _split(flat, static)
            flat = np.concatenate([np.ravel(ess[p.name]) for p in dynamic] or [np.zeros(0)])
            flat = gaussian_mechanism(flat, sigma, rng_noise) if sigma > 0 else flat
            noisy = {**_split(flat, dynamic), **noisy_static}
            if sigma > 0:
                noisy = model.denoise(noisy, sigma)
            target = model.natural_target({k: noisy[k] for k in names}, scale)
            raw = {k: (1.0 - rho) * raw[k] + rho * target[k] for k in raw}
            state = model.project(raw)
            if self.verbose:  # private fits print public numbers only: a batch's row count is n or a Poisson draw
                size = f"sample rate={q:.3g}" if private else f"batch={_n_rows(batch)}"
                print(f"[{cls}] step {t + 1}/{n_steps} (rho={rho:.3g}, {size})")

        self.n_iter_ = int(self.max_iter)
        self.n_steps_ = n_steps
        self.sample_rate_ = q
        self.noise_std_ = float(sigma)
        self.noise_multiplier_ = z
        self.n_samples_estimate_ = n_hat
        self.privacy_report_ = self._vips_report(releases, plan, b_static, b_dyn, need_count)
        return raw, state, noisy

    def _vips_report(self, releases, plan: VIPSPlan, b_static: float, b_dyn: float, need_count: bool) -> dict:
        own = PrivacyLedger()
        own.record(*releases)
        eps, dlt = own.spent()
        if self.learning_method == "online" and not math.isfinite(float(self.epsilon)):
            accounting = ("non-private reference (epsilon=inf): no noise; fixed consecutive minibatches of "
                          "batch_size rows scaled by n_rows / batch rows, as scikit-learn's online VB")
        elif self.learning_method == "batch":
            accounting = ("full-batch VIPS: every iteration is one Gaussian release of the concatenated ESS; "
                          "all releases compose exactly in Gaussian DP (mu = sqrt(sum mu_i^2)) and are converted "
                          "to (epsilon, delta) with the analytic Gaussian formula")
        else:
            accounting = (f"stochastic VIPS: Poisson-subsampled Gaussian releases of the minibatch ESS, composed "
                          f"with the {self.accountant.upper()} accountant; the row count (if any) by basic composition")
        return {
            "epsilon": eps,
            "delta": dlt,
            "target_epsilon": float(self.epsilon),
            "target_delta": float(self.delta),
            "neighbouring": self.neighbouring,
            "mu": None if math.isnan(plan.mu) else plan.mu,
            "sensitivity": {"ess": b_dyn, "static_ess": b_static if b_static else None,
                            "n_samples": 1.0 if need_count else None},
            "n_samples": ("DP estimate (noisy count, sensitivity 1)" if need_count else
                          "true row count (non-private fixed minibatches)"
                          if self.learning_method == "online" and not math.isfinite(float(self.epsilon)) else
                          "not used (the updates scale minibatch sums by 1/sample_rate)"),
            "accounting": accounting,
            "releases": [r.to_dict() for r in releases],
        }


def _n_rows(data: tuple) -> int:
    return int(data[0].shape[0])


def _split(flat: np.ndarray, pieces: list[ESSPiece]) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for p in pieces:
        out[p.name] = flat[start:start + p.size]
        start += p.size
    return out


def _legacy_random_state(random_state, seed: int) -> np.random.RandomState:
    """The ``RandomState`` scikit-learn would draw from: ``RandomState(random_state)`` for an int seed.

    Otherwise (None, a RandomState or Generator) one seeded by ``seed``, derived from ``random_state``
    (unlike ``check_random_state``, neither the global RNG nor the caller's instance is drawn from
    again).
    """
    if isinstance(random_state, Integral):
        return np.random.RandomState(int(random_state))
    return np.random.RandomState(np.random.MT19937(seed))


def _noisy_count(n: int, release: PrivacyRelease, rng: np.random.Generator) -> float:
    std = release.noise_std or 0.0
    value = float(n) + (float(rng.standard_normal()) * std if std > 0 else 0.0)
    return max(1.0, value)


# ---------------------------------------------------------------------------------------------
# the general estimator


class DPVariationalBayes(_VIPSMixin, BaseEstimator):
    r"""Differentially private variational Bayes (VIPS) for any conjugate-exponential :class:`VBModel`.

    Each iteration runs the model's local (per-row) variational step, sums the per-row expected
    sufficient statistics (each row's contribution clipped to the model's public norm bound
    :math:`B`), adds Gaussian noise once to the concatenated statistics and updates the global
    variational parameters from the noisy sums only (Park et al. 2020):

    .. math::

        \tilde s_t = \sum_{i \in B_t} \bar s_i + N(0, \sigma^2 I), \qquad
        \lambda_{t+1} = (1 - \rho_t)\,\lambda_t + \rho_t\,(\eta_0 + c\,\tilde s_t).

    * ``learning_method="batch"`` (full batch): :math:`B_t` = all rows, :math:`\rho_t = c = 1`;
      each of the ``max_iter`` iterations is one Gaussian release, and the fit is exactly
      :math:`\mu`-GDP with :math:`\mu = \mu(\varepsilon, \delta)`, each iteration getting
      :math:`\mu/\sqrt{T}` (pieces that do not depend on the global parameters, e.g.
      :math:`\sum_i (y_i - 1/2)x_i`, are released once instead of :math:`T` times).
    * ``learning_method="online"`` (stochastic): Poisson minibatches with rate :math:`q`,
      :math:`c = 1/q` (an unbiased estimate of the full sum), :math:`\rho_t = (\tau_0 + t)^{-\kappa}`
      with :math:`t = 1, 2, \dots` counted per minibatch; ``max_iter`` passes of
      :math:`\lceil 1/q \rceil` steps, the noise multiplier calibrated by bisection on the
      subsampled-Gaussian accountant (PRV or RDP) for that many steps.  Poisson sampling is what
      the privacy amplification by subsampling assumes.
    * ``learning_method="online"`` with ``epsilon=float("inf")`` (the non-private reference) walks
      scikit-learn's schedule instead: each pass visits the rows in order in fixed consecutive
      minibatches of ``batch_size`` rows (``sklearn.utils.gen_batches``; the last one may be
      smaller; ``ceil(sample_rate * n)`` rows when ``sample_rate`` is given), scaled by
      :math:`c = n / |B_t|` with the true row count :math:`n` (no privacy to keep), with the same
      :math:`\rho_t`.  Models that declare ``sklearn_random_stream`` (LDA) also draw their
      initialisation and local steps from ``np.random.RandomState(random_state)`` in
      scikit-learn's order (both modes), so an int seed reproduces scikit-learn's fit.

    **Neighbouring relation**: add/remove one row.  The number of rows is never used as if public:
    the stochastic update needs only :math:`q`; when :math:`q` has to be derived from
    ``batch_size`` (``sample_rate=None``), or the model needs the row count, a noisy count
    (sensitivity 1) is released with ``count_share`` of the budget.  All releases are recorded in
    ``privacy_report_`` and in ``ledger`` (checked before any release; overspending raises
    :class:`~skdpgen.exceptions.PrivacyBudgetExceeded`).  Noisy statistics are post-processed
    by the model (e.g. precision matrices projected to positive definite): free.

    Parameters
    ----------
    model : VBModel
        The conjugate-exponential model, e.g. :class:`~skdpgen.bayes.LDAModel` or
        :class:`~skdpgen.bayes.LogisticModel`, or your own subclass of :class:`VBModel`.
    epsilon : float, default=1.0
        Privacy budget of the whole fit; ``float("inf")`` runs non-private VB (the reference).
    delta : float, default=1e-5
    learning_method : {"batch", "online"}, default="batch"
    max_iter : int, default=10
        Iterations (full batch) or passes over the data (online).
    batch_size : int, default=128
        Expected minibatch size (online mode, when ``sample_rate`` is None): :math:`q =`
        ``batch_size`` / (DP row count); with ``epsilon=inf`` the fixed minibatch size.
    sample_rate : float or None, default=None
        Public Poisson sampling rate :math:`q` (online mode); overrides ``batch_size``.
    learning_decay, learning_offset : float, default=0.7, 10.0
        :math:`\kappa` and :math:`\tau_0` of the online step size.
    count_share : float, default=0.02
        Share of the budget spent on the noisy row count, when one is needed.
    accountant : {"prv", "rdp"}, default="prv"
        Accountant of the online mode.
    random_state : int, RandomState or None
        Seeds initialisation and minibatches (local generators; global RNGs are untouched);
        the privacy mechanisms' randomness (noise, Poisson batches, noisy counts) is fresh OS entropy at
        every fit unless ``skdpgen.set_config(reproducible_noise=True)`` (tests only).
    ledger : PrivacyLedger or None
    verbose : int, default=0

    Attributes
    ----------
    params_ : dict of ndarray
        The fitted global state (``model.project`` of the final natural parameters).
    natural_params_ : dict of ndarray
        The final running natural parameters before projection.
    n_features_in_ : int
    n_iter_, n_steps_ : int
        Iterations (passes) and noisy releases made.
    sample_rate_ : float
        :math:`q` used (1 in full-batch mode; ``batch_size / n`` for the fixed batches of the
        non-private online mode).
    noise_std_ : float
        Standard deviation of the noise added per release to the (dynamic) statistics.
    n_samples_estimate_ : float or None
        The DP row count, when one was released.
    privacy_report_ : dict
        Spend, neighbouring relation, sensitivities and every release.

    See Also
    --------
    DPLatentDirichletAllocation, DPBayesianLogisticRegression : the built-in models as estimators.

    References
    ----------
    Park, M., Foulds, J., Chaudhuri, K. and Welling, M. "Variational Bayes in Private Settings
    (VIPS)." JAIR 68, 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from skdpgen import DPVariationalBayes
    >>> from skdpgen.bayes import LogisticModel
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3)) / 3
    >>> y = (X[:, 0] > 0).astype(int)
    >>> vb = DPVariationalBayes(model=LogisticModel(), epsilon=float("inf"), random_state=0).fit(X, y)
    >>> bool(vb.params_["mean"][0] > 0)
    True
    """

    _parameter_constraints: dict = {"model": [None, HasMethods(["prepare", "local_step", "natural_target"])],
                                    **_vips_constraints()}

    def __init__(self, model=None, *, epsilon=1.0, delta=1e-5, learning_method="batch", max_iter=10,
                 batch_size=128, sample_rate=None, learning_decay=0.7, learning_offset=10.0, count_share=0.02,
                 accountant="prv", random_state=None, ledger=None, verbose=0):
        self.model = model
        self.epsilon = epsilon
        self.delta = delta
        self.learning_method = learning_method
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.sample_rate = sample_rate
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.count_share = count_share
        self.accountant = accountant
        self.random_state = random_state
        self.ledger = ledger
        self.verbose = verbose

    @fresh_fit
    def fit(self, X, y=None):
        """Fit the model's global variational parameters with VIPS; returns self (unfitted if it raises)."""
        self._validate_params()
        if self.model is None:
            raise ValueError("DPVariationalBayes needs a model, e.g. model=LDAModel() or model=LogisticModel()")
        X, y = self.model.validate(self, X, y, reset=True)
        raw, state, _ = self._run_vips(self.model, self.model.prepare(X, y), X.shape[1])
        self.natural_params_ = raw
        self.params_ = state
        return self

    def score(self, X, y=None) -> float:
        """The model's ``score_data`` on ``X`` (and ``y``): its meaning depends on the model.

        :class:`~skdpgen.bayes.LDAModel`: the approximate log-likelihood (variational bound), a
        TOTAL over the documents, as scikit-learn's ``LatentDirichletAllocation.score`` and
        :meth:`DPLatentDirichletAllocation.score`.  :class:`~skdpgen.bayes.LogisticModel`: the
        mean log predictive probability of the labels per row.  Raises ``AttributeError`` for a
        model without ``score_data``.
        """
        check_is_fitted(self)
        if not hasattr(self.model, "score_data"):
            raise AttributeError(f"{type(self.model).__name__} defines no score")
        X, y = self.model.validate(self, X, y, reset=False)
        return float(self.model.score_data(self.model.prepare(X, y), self.params_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        model = self.model
        if model is not None:
            tags.input_tags.positive_only = bool(model.positive_only)
            tags.input_tags.sparse = bool(model.accept_sparse)
            tags.target_tags.required = bool(model.requires_y)
        tags.non_deterministic = fresh_noise(self.epsilon)  # fresh privacy noise at every fit
        return tags
