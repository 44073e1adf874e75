"""BaseSynthesizer: the parameters, validation, budget plan and conventions shared by every synthesizer."""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import (
    _check_feature_names,
    _check_feature_names_in,
    _check_n_features,
    check_is_fitted,
    validate_data,
)

from ._config import fresh_noise, privacy_seed
from ._torch import PortableStateMixin, derive_seeds, resolve_device
from .encoding import TabularEncoder, _frame_to_array
from .privacy import ADD_REMOVE, PrivacyLedger, PrivacyRelease, gdp_mu
from .privacy.accounting import gdp_epsilon
from .schema import Schema, estimate_schema

__all__ = ["BaseSynthesizer", "GDPBudget", "plan_gdp_budget"]

TARGET_NAME = "target"


@dataclass(frozen=True)
class GDPBudget:
    r"""How a fit's :math:`(\varepsilon, \delta)` is split between its Gaussian releases.

    The whole fit is :math:`\mu`-GDP plus ``threshold_delta`` (the thresholding of sparse
    histograms), with :math:`\mu = \mu(\varepsilon, \delta - \text{threshold\_delta})`.  The
    schema release gets :math:`\mu_s = \sqrt{s}\,\mu` and the model :math:`\mu_m =
    \sqrt{1-s}\,\mu` (share ``s``), so that :math:`\mu_s^2 + \mu_m^2 = \mu^2` composes back
    exactly to the target.
    """

    epsilon: float
    delta: float
    mu: float
    threshold_delta: float
    schema_mu: float
    model_mu: float

    @property
    def gdp_delta(self) -> float:
        return self.delta - self.threshold_delta

    def release_delta(self, mu_part: float) -> float:
        """The share of the GDP delta stated for a release of ``mu_part`` (the deltas add up)."""
        if math.isinf(self.mu):
            return self.gdp_delta * (0.5 if self.schema_mu else 1.0)
        return self.gdp_delta * (mu_part**2) / (self.mu**2)


def plan_gdp_budget(epsilon: float, delta: float, schema_share: float, need_schema: bool,
                    need_threshold: bool) -> GDPBudget:
    """Split ``(epsilon, delta)`` between an optional DP schema release and the model release."""
    threshold_delta = delta / 2 if need_threshold else 0.0
    mu = gdp_mu(epsilon, delta - threshold_delta)
    share = schema_share if need_schema else 0.0
    if math.isinf(mu):
        return GDPBudget(epsilon, delta, mu, threshold_delta, math.inf if need_schema else 0.0, math.inf)
    return GDPBudget(epsilon, delta, mu, threshold_delta, math.sqrt(share) * mu, math.sqrt(1 - share) * mu)


def _planned_schema_releases(budget: GDPBudget, owner: str) -> list[PrivacyRelease]:
    r"""The schema estimate's release as planned (before the noise): :math:`\mu_s`-GDP plus the threshold's delta.

    ``estimate_schema`` releases one Gaussian histogram at ``budget.schema_mu`` (with the
    threshold's ``extra_delta`` when a column's categories are estimated); the plan states it
    the same way (with the threshold delta whenever ``budget`` has one: never less than the
    release).
    """
    if budget.schema_mu == 0.0:
        return []
    extra = float(budget.threshold_delta)
    return [PrivacyRelease.gaussian("schema", mu=budget.schema_mu, delta=extra + budget.release_delta(budget.schema_mu),
                                    extra_delta=extra, owner=owner,
                                    mechanism="gaussian_sparse_histogram" if extra else "gaussian")]


# the private attributes that the last fit (decorated with fresh_fit) created
_FIT_PRIVATE = "_skdpgen_fit_private"


def forget_fitted_state(estimator) -> None:
    """Make ``estimator`` unfitted: delete its fitted attributes.

    Those are the public names ending in ``_`` (scikit-learn's convention, what
    :func:`~sklearn.utils.validation.check_is_fitted` looks for) and the private attributes that
    the last :func:`fresh_fit` call created.  Constructor parameters and what scikit-learn keeps
    on the instance outside ``fit`` (``set_output`` configuration, metadata requests, callback
    contexts) stay.
    """
    params = set(estimator.get_params(deep=False))
    own = set(vars(estimator).get(_FIT_PRIVATE, ())) | {_FIT_PRIVATE}
    for name in list(vars(estimator)):
        if name not in params and (name in own or (name.endswith("_") and not name.startswith("_"))):
            delattr(estimator, name)


def fresh_fit(fit: Callable) -> Callable:
    """Decorate a ``fit``: it starts from an unfitted estimator and, if it raises, leaves it unfitted.

    Otherwise a refit would keep attributes of the earlier fit that it does not set itself (the
    ``privacy_report_`` of a private fit after a non-private one), and a refit that fails
    half-way would mix the two fits.  A failed fit also loses every attribute it added.
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        forget_fitted_state(self)
        before = set(vars(self))
        try:
            out = fit(self, *args, **kwargs)
        except BaseException:
            for name in set(vars(self)) - before:
                delattr(self, name)
            raise
        added = set(vars(self)) - before
        vars(self)[_FIT_PRIVATE] = tuple(sorted(n for n in added if n.startswith("_")))
        return out

    return wrapper


class BaseSynthesizer(PortableStateMixin, BaseEstimator):
    """Base class of skdpgen's synthesizers.

    Handles the shared parameters, input validation, the public schema (declared, or estimated
    with a slice of the budget), the encoder, the privacy budget plan, the ledger and the
    privacy report.  Subclasses implement the model on the encoded (model-space) tensor.

    Shared parameters
    -----------------
    epsilon : float, default=1.0
        Privacy budget of the whole fit; ``float("inf")`` fits without privacy (for reference).
    delta : float, default=1e-5
        In (0, 1); should be well below 1/n (``fit`` warns when it exceeds 1/n, n the DP estimate of
        the row count).
    schema : Schema, dict, str or path, default=None
        Public metadata (column kinds, bounds, categories).  ``None``: estimated with differential
        privacy using ``schema_share`` of the budget.
    schema_share : float, default=0.1
        Share of the budget (of :math:`\\mu^2` in GDP terms) spent on estimating the schema
        when none is declared.
    random_state : int, RandomState or None
        Seeds the fit's random draws (feature maps, generator training); :meth:`sample` takes
        its own ``random_state`` (``None``: fresh draws at every call);
        the privacy mechanisms' randomness (noise, Poisson batches, noisy counts) is fresh OS entropy at
        every fit unless ``skdpgen.set_config(reproducible_noise=True)`` (tests only).
    device : {"auto", "cpu", "cuda"} or torch.device, default="auto"
        Where the model trains; ``"auto"`` uses CUDA when it is available.
    verbose : int, default=0
    ledger : PrivacyLedger or None
        Shared account that records every release of this estimator (and of its clones).
    n_threads : int or None, default=1
        Torch CPU threads while fitting/sampling (``-1``: all CPUs, ``None``: leave torch's
        setting).  One thread is fastest for these small models on small machines (see
        :func:`skdpgen._torch.torch_threads`); raise it on many-core machines with big batches.
    """

    _parameter_constraints: dict = {
        "epsilon": [Interval(Real, 0, math.inf, closed="right")],
        "delta": [Interval(Real, 0, 1, closed="neither")],
        "schema": [None, Schema, dict, str, os.PathLike],
        "schema_share": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "device": [StrOptions({"auto", "cpu", "cuda"}), torch.device],
        "verbose": ["verbose"],
        "ledger": [None, PrivacyLedger],
        "n_threads": [None, Options(Integral, {-1}), Interval(Integral, 1, None, closed="left")],
    }

    neighbouring = ADD_REMOVE

    def __init__(self, *, epsilon=1.0, delta=1e-5, schema=None, schema_share=0.1, random_state=None,
                 device="auto", verbose=0, ledger=None, n_threads=1):
        self.epsilon = epsilon
        self.delta = delta
        self.schema = schema
        self.schema_share = schema_share
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.ledger = ledger
        self.n_threads = n_threads

    # ------------------------------------------------------------------ input handling
    def _check_X(self, X, reset: bool) -> pd.DataFrame:
        """Validate X and return it as a DataFrame with the fitted column names."""
        if isinstance(X, pd.DataFrame):
            if X.shape[0] == 0:
                raise ValueError("X has 0 rows: a synthesizer needs at least one row")
            if X.shape[1] == 0:
                raise ValueError("X has 0 columns")
            bad = [c for c in X.columns if not isinstance(c, str)]
            if bad:  # before any schema lookup, which would report the columns as undescribed
                raise ValueError(f"DataFrame column names must be strings, got {bad[:5]!r}; rename the columns "
                                 "(e.g. X.columns = X.columns.astype(str)) to the names the schema uses")
            if X.columns.has_duplicates:
                dup = sorted(set(X.columns[X.columns.duplicated()]))
                raise ValueError(f"X has duplicate column names {dup[:5]!r}; give each column once")
            _check_feature_names(self, X, reset=reset)
            _check_n_features(self, X, reset=reset)
            if reset:
                self._input_kind = "pandas"
            return X
        if not reset and getattr(self, "_input_kind", None) == "pandas":
            # an array after a DataFrame fit: may hold text columns; taken in fit order, typed as at fit
            arr = validate_data(self, X, reset=False, dtype=None, ensure_all_finite=False, ensure_min_samples=1)
            frame = pd.DataFrame(arr, columns=self._feature_names()).infer_objects()
            dtypes = getattr(self, "dtypes_", {})
            numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(dtypes.get(c, object))
                       and not pd.api.types.is_bool_dtype(dtypes.get(c, object))]
            for c in numeric:
                frame[c] = pd.to_numeric(frame[c], errors="raise")
            return frame
        arr = validate_data(self, X, reset=reset, dtype="numeric", ensure_all_finite="allow-nan",
                            ensure_min_samples=1)
        if np.isinf(arr).any():
            raise ValueError("X contains infinite values; only finite values and NaN (missing) are allowed")
        if reset:
            self._input_kind = "numpy"
            self._input_dtype = arr.dtype  # restored by _to_output (public structure)
        # an array after a DataFrame fit: validate_data warned; its columns are taken in fit order
        return pd.DataFrame(arr, columns=self._feature_names())

    def _check_y(self, y, n_rows: int) -> pd.Series | None:
        if y is None:
            return None
        if isinstance(y, pd.DataFrame):
            if y.shape[1] != 1:
                raise ValueError(f"y must be one column, got a DataFrame with {y.shape[1]} columns")
            y = y.iloc[:, 0]
        if isinstance(y, pd.Series):
            series = y.reset_index(drop=True)
        else:
            arr = np.asarray(y)
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise ValueError(f"y must be 1-D, got shape {arr.shape}")
            series = pd.Series(arr)
        if len(series) != n_rows:
            raise ValueError("X and y have different numbers of rows")  # no counts: they are private
        if series.isna().any():
            raise ValueError(
                "y contains missing values; the target of a class-conditional fit must be complete")
        return series

    # ------------------------------------------------------------------ schema and budget
    def _target_name(self, y: pd.Series, schema: Schema | None) -> str:
        if schema is not None and schema.target is not None:
            if y.name is not None and y.name != schema.target and y.name in schema.columns:
                raise ValueError(f"y is the column {y.name!r} but the schema's target ('__target__') is "
                                 f"{schema.target!r}; give that column as y, or change the schema's target")
            return schema.target
        if y.name is not None and schema is not None and y.name in schema.columns:
            return str(y.name)
        if schema is not None:
            extra = [c for c in schema.columns if c not in set(self._feature_names())]
            if len(extra) == 1:
                return extra[0]
        return str(y.name) if y.name is not None else TARGET_NAME

    def _feature_names(self) -> list[str]:
        if hasattr(self, "feature_names_in_"):
            return [str(c) for c in self.feature_names_in_]
        return [f"x{i}" for i in range(self.n_features_in_)]

    def _resolve_schema(self, X: pd.DataFrame, y: pd.Series | None, owner: str, split: str = "gdp",
                        plan: Callable[[GDPBudget, bool], list[PrivacyRelease]] | None = None):
        r"""Return (feature schema, target spec or None, target name, budget, schema releases).

        ``split="gdp"``: the schema and the model share one GDP budget (``schema_share`` of
        :math:`\mu^2`).  ``split="basic"``: the schema gets ``(schema_share * epsilon,
        schema_share * delta)`` and the model the rest, by basic composition (for models whose
        own releases are not Gaussian, e.g. DP-SGD).

        ``plan(budget, need_threshold)``: the releases to reserve in the ledger BEFORE the schema's
        noise is drawn (:meth:`_reserve_plan`): a refused fit draws nothing, and the schema
        release is recorded even if the fit fails after it (whether it fails depends on the rows).
        """
        declared = None if self.schema is None else Schema.coerce(self.schema)
        names = list(X.columns)
        target_name = self._target_name(y, declared) if y is not None else None
        if target_name is not None and target_name in names:
            raise ValueError(_target_clash_message(target_name, y, declared))
        if declared is not None:
            missing = [c for c in names if c not in declared.columns]
            if missing:
                raise ValueError(f"the schema does not describe the columns {missing}; declare every column")
        need_features = declared is None
        need_target = y is not None and (declared is None or target_name not in declared.columns)
        need_schema = need_features or need_target
        need_threshold = need_target or (need_features and any(
            not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]) for c in names))
        if split == "basic":
            share = float(self.schema_share) if need_schema else 0.0
            budget = plan_gdp_budget(float(self.epsilon) * share if need_schema else float(self.epsilon),
                                     float(self.delta) * share if need_schema else float(self.delta),
                                     1.0, need_schema, need_threshold)
        else:
            budget = plan_gdp_budget(float(self.epsilon), float(self.delta), float(self.schema_share),
                                     need_schema, need_threshold)
        releases: list[PrivacyRelease] = []
        if plan is not None:
            self._reserve_plan(plan(budget, need_threshold))
        else:
            self._drawn = []
        if need_schema:
            rng = np.random.default_rng(privacy_seed(self._seeds[0], math.isfinite(float(self.epsilon))))
            frame = X if need_features else X.iloc[:, :0]
            y_cat = None if y is None or not need_target else y.astype("category")
            # counted as drawn before the call: whatever estimate_schema raises after its noise (an
            # error, or a warning turned into one), the release stays recorded
            start = len(self._drawn)
            self._drawn.extend(self._restate(r, budget) for r in _planned_schema_releases(budget, owner))
            try:
                est, rels = estimate_schema(frame, y_cat, mu=budget.schema_mu,
                                            threshold_delta=max(budget.threshold_delta, 1e-300)
                                            if need_threshold else budget.threshold_delta, rng=rng,
                                            target_name=target_name or TARGET_NAME, owner=owner)
            except ValueError as exc:  # say what was attempted; no row count: it is private
                raise ValueError(f"{exc} (while estimating the schema with differential privacy at epsilon="
                                 f"{float(self.epsilon):g} with schema_share={float(self.schema_share):g}; the "
                                 "usual cause is too few rows for the noise, down to one sample: declare the "
                                 "schema, or give a larger epsilon or schema_share)") from exc
            releases = [self._restate(r, budget) for r in rels]
            self._drawn[start:] = releases  # the actual release in place of the planned one
            feature_schema = est.subset(names) if need_features else declared.subset(names)
            target_spec = est.target_spec if need_target else None
        else:
            feature_schema = declared.subset(names)
            target_spec = None
        if y is not None and target_spec is None:
            target_spec = declared.columns[target_name]
        if target_spec is not None and target_spec.kind not in ("categorical", "boolean"):
            raise ValueError(f"the target {target_name!r} must be categorical or boolean in the schema, "
                             f"got {target_spec.kind!r}")
        return feature_schema, target_spec, target_name, budget, releases

    @staticmethod
    def _restate(release: PrivacyRelease, budget: GDPBudget) -> PrivacyRelease:
        """State a schema release at its share of the fit's delta (so the deltas add up)."""
        delta = release.extra_delta + budget.release_delta(budget.schema_mu)
        has_gdp = bool(release.mu) and delta > release.extra_delta
        eps = gdp_epsilon(release.mu, delta - release.extra_delta) if has_gdp \
            else 0.0
        return replace(release, delta=delta, epsilon=eps)

    def _model_release(self, name: str, budget: GDPBudget, sensitivity: float, noise_std: float,
                       owner: str) -> PrivacyRelease:
        return PrivacyRelease.gaussian(name, mu=budget.model_mu, delta=budget.release_delta(budget.model_mu),
                                       sensitivity=sensitivity, noise_std=noise_std, owner=owner)

    def _reserve_plan(self, planned: list[PrivacyRelease]) -> None:
        """Reserve the fit's ``planned`` releases before any noise; ``self._drawn`` lists what is drawn since.

        Settle with :meth:`_settle_plan`: with what was released (a fit that fails after drawing
        noise records what it drew, see :meth:`_settle_drawn`).
        """
        self._drawn: list[PrivacyRelease] = []
        self._reservation = None if self.ledger is None else self.ledger.reserve(planned)

    def _settle_plan(self, releases: list[PrivacyRelease], *, narrow: bool = False) -> None:
        """Settle the reservation of :meth:`_reserve_plan` with what the fit released.

        ``narrow=True``: replace it by the exact remaining plan instead (checked: may raise
        :class:`~skdpgen.exceptions.PrivacyBudgetExceeded`, nothing changed), to settle again later.
        """
        reservation = getattr(self, "_reservation", None)
        if reservation is not None:
            self.ledger.settle(reservation, releases, check=narrow)
        if not narrow:
            self._releases = list(releases)
            for name in ("_reservation", "_drawn"):  # done: no reference to the ledger stays on the fit
                vars(self).pop(name, None)

    def _settle_drawn(self) -> None:
        """After a failure: record what the fit drew (``self._drawn``) in place of its reservation, once."""
        if getattr(self, "_reservation", None) is not None:
            self._settle_plan(list(self._drawn))

    def _check_delta(self, n_estimate: float) -> None:
        """Warn when ``delta`` exceeds 1/n, n read from the DP row estimate (free post-processing).

        A delta of 1/n allows a mechanism that publishes one row in the clear.
        """
        if math.isfinite(float(self.epsilon)) and float(self.delta) * max(n_estimate, 1.0) > 1.0:
            warnings.warn(f"delta={float(self.delta):g} is above 1/n (the DP estimate of the row count is "
                          f"about {n_estimate:.3g}): a delta near 1/n allows publishing a row in the clear; choose "
                          "delta << 1/n, e.g. 1e-5 or below", UserWarning, stacklevel=3)

    def _commit_releases(self, releases: list[PrivacyRelease]) -> None:
        """Check the external ledger (if any) and record; the fit's own report always gets them."""
        if self.ledger is not None:
            self.ledger.record(*releases)
        self._releases = list(releases)
        for name in ("_reservation", "_drawn"):  # nothing of a plan stays on the fitted estimator
            vars(self).pop(name, None)

    def _make_report(self, budget: GDPBudget | None, accounting: str | None = None) -> dict:
        own = PrivacyLedger()
        own.record(*self._releases)
        eps, dlt = own.spent()
        return {
            "epsilon": eps,
            "delta": dlt,
            "target_epsilon": float(self.epsilon),
            "target_delta": float(self.delta),
            "neighbouring": self.neighbouring,
            "mu": None if budget is None else budget.mu,
            "accounting": accounting or "Gaussian DP (exact composition of Gaussian releases, Dong-Roth-Su "
                                        "2022) converted to (epsilon, delta) with the analytic Gaussian formula",
            "releases": [r.to_dict() for r in self._releases],
        }

    # ------------------------------------------------------------------ helpers for subclasses
    def _setup_fit(self, n_seeds: int = 6):
        self._validate_params()
        self._seeds = derive_seeds(self.random_state, n_seeds)
        self.device_ = resolve_device(self.device)

    def _fit_encoder(self, feature_schema: Schema, X: pd.DataFrame) -> TabularEncoder:
        encoder = TabularEncoder(schema=feature_schema)
        encoder.fit(X)
        return encoder

    def _to_output(self, frame: pd.DataFrame):
        """The decoded frame as :meth:`fit` saw X: a DataFrame, or an array of the input's dtype.

        An integer array comes back as integers (``float64`` if missing values were generated),
        like :meth:`TabularEncoder.inverse_transform <skdpgen.encoding.TabularEncoder.inverse_transform>`.
        """
        if self._input_kind == "numpy":
            return _frame_to_array(frame, getattr(self, "_input_dtype", np.dtype(np.float64)))
        return frame

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the columns that :meth:`sample` returns.

        ``input_features`` is checked against ``feature_names_in_`` (or ``n_features_in_``) as in
        scikit-learn; the output names are the fitted columns either way.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        return np.asarray(self._feature_names(), dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.required = False
        tags.non_deterministic = fresh_noise(self.epsilon)  # fresh privacy noise at every fit
        return tags


def _target_clash_message(target_name: str, y: pd.Series, schema: Schema | None) -> str:
    """Why the label's name clashes with a column of X, and what the user can do about it."""
    if schema is not None and schema.target == target_name:
        return (f"the schema's target {target_name!r} is also a column of X; give the labels once: as y "
                "(drop the column from X) or as a column of X (without y)")
    if y.name is None:
        return (f"X has a column named {target_name!r}, the name given to an unnamed y; give y a name that is "
                "not a column of X (e.g. a pandas Series with y.name set), or rename that column")
    return (f"y is named {target_name!r}, like a column of X; rename the Series (y.name) or the column, or give "
            "the labels once")


def check_n_samples(n_samples) -> int:
    if isinstance(n_samples, bool) or not isinstance(n_samples, Integral | np.integer):
        raise TypeError(f"n_samples must be an integer, got {n_samples!r}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    return int(n_samples)
