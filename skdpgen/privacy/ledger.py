"""The privacy ledger: one account of every release, shared across clones and searches."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from ..exceptions import PrivacyBudgetExceeded
from .accounting import compose_gdp, gdp_epsilon

__all__ = ["PrivacyRelease", "PrivacyLedger", "ADD_REMOVE"]

ADD_REMOVE = "add/remove one row"


@dataclass(frozen=True)
class PrivacyRelease:
    r"""One differentially private release, as recorded in a :class:`PrivacyLedger`.

    Parameters
    ----------
    name : str
        What was released, e.g. ``"DPMMDSynthesizer.embedding"``.
    mechanism : str
        ``"gaussian"`` (one Gaussian release), ``"gaussian_sparse_histogram"`` (Gaussian noise
        plus a release threshold) or ``"subsampled_gaussian"`` (DP-SGD-like compositions).
    epsilon, delta : float
        The guarantee of this release alone.
    mu : float or None
        GDP parameter when the release is :math:`\mu`-GDP (plus ``extra_delta``); such releases
        compose exactly in :meth:`PrivacyLedger.spent`.
    extra_delta : float
        Additive delta outside the GDP part (the threshold of a sparse histogram).
    sensitivity, noise_std : float or None
        L2 sensitivity and noise standard deviation of a Gaussian release.
    noise_multiplier, sample_rate, steps, accountant
        Parameters of a subsampled Gaussian composition.
    owner : str
        Which estimator (class name and fit id) made the release.
    neighbouring : str
        The neighbouring relation the guarantee refers to.
    """

    name: str
    mechanism: str
    epsilon: float
    delta: float
    mu: float | None = None
    extra_delta: float = 0.0
    sensitivity: float | None = None
    noise_std: float | None = None
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    accountant: str | None = None
    owner: str = ""
    neighbouring: str = ADD_REMOVE
    timestamp: float = field(default_factory=time.time)

    @classmethod
    def gaussian(cls, name: str, *, mu: float, delta: float, extra_delta: float = 0.0,
                 sensitivity: float | None = None, noise_std: float | None = None,
                 mechanism: str = "gaussian", owner: str = "") -> PrivacyRelease:
        """A mu-GDP release (plus ``extra_delta``) stated at total ``delta``."""
        gdp_part = delta - extra_delta
        if not gdp_part > 0:
            raise ValueError("delta must exceed extra_delta")
        eps = gdp_epsilon(mu, gdp_part) if mu > 0 else 0.0
        return cls(name=name, mechanism=mechanism, epsilon=eps, delta=float(delta), mu=float(mu),
                   extra_delta=float(extra_delta), sensitivity=sensitivity, noise_std=noise_std,
                   owner=owner)

    def to_dict(self) -> dict:
        return asdict(self)


class PrivacyLedger:
    """Records every release and refuses to overspend.

    One ledger can be passed to many estimators (``ledger=``); it survives
    :func:`sklearn.base.clone` and ``copy.deepcopy`` as the *same* object, so a
    :class:`~sklearn.model_selection.GridSearchCV` run with ``n_jobs=1`` (threads also work)
    reports the total privacy spent by the whole search.

    Parameters
    ----------
    max_epsilon, max_delta : float or None
        The budget.  A release that would take :meth:`spent` above either is refused with
        :class:`~skdpgen.exceptions.PrivacyBudgetExceeded` *before* anything is released.

    Notes
    -----
    Composition (:meth:`spent`): releases that are :math:`\\mu`-GDP compose exactly,
    :math:`\\mu = \\sqrt{\\sum \\mu_i^2}`; the others (subsampled compositions) are added by basic
    composition.  The total delta is the sum of the entries' deltas unless one is asked for, and
    the result is never looser than basic composition of all entries.
    Processes do not share memory: with ``GridSearchCV(n_jobs>1)`` and a process backend the
    workers' records do not come back; use ``n_jobs=1`` or a threading backend.
    """

    def __init__(self, max_epsilon: float | None = None, max_delta: float | None = None):
        self.max_epsilon = max_epsilon
        self.max_delta = max_delta
        self._entries: list[PrivacyRelease] = []
        self._lock = threading.RLock()

    # a ledger is an account, not a value: copies are the same account
    def __copy__(self) -> PrivacyLedger:
        return self

    def __deepcopy__(self, memo) -> PrivacyLedger:
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    @property
    def entries(self) -> list[PrivacyRelease]:
        """A copy of the records, oldest first."""
        with self._lock:
            return list(self._entries)

    def spent(self, delta: float | None = None) -> tuple[float, float]:
        """Composed ``(epsilon, delta)`` of everything recorded."""
        with self._lock:
            return _compose(self._entries, delta)

    def check(self, releases: Iterable[PrivacyRelease]) -> tuple[float, float]:
        """The spend after ``releases``; raises if it exceeds the budget.  Records nothing."""
        with self._lock:
            eps, dlt = _compose(self._entries + list(releases), None)
            tol = 1e-9
            if self.max_epsilon is not None and eps > self.max_epsilon * (1 + tol):
                raise PrivacyBudgetExceeded(
                    f"this release would bring the ledger to epsilon={eps:.4g} > max_epsilon="
                    f"{self.max_epsilon:g} (already spent epsilon={self.spent()[0]:.4g})")
            if self.max_delta is not None and dlt > self.max_delta * (1 + tol):
                raise PrivacyBudgetExceeded(
                    f"this release would bring the ledger to delta={dlt:.3g} > max_delta="
                    f"{self.max_delta:g}")
            return eps, dlt

    def record(self, *releases: PrivacyRelease) -> None:
        """Check the budget and record ``releases`` atomically."""
        with self._lock:
            self.check(releases)
            self._entries.extend(releases)

    def to_frame(self):
        """The records as a :class:`pandas.DataFrame`, one row per release."""
        import pandas as pd

        return pd.DataFrame([r.to_dict() for r in self.entries])

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        eps, dlt = self.spent()
        return (f"PrivacyLedger(max_epsilon={self.max_epsilon}, max_delta={self.max_delta}; "
                f"{len(self)} releases, spent epsilon={eps:.4g}, delta={dlt:.3g})")


def _compose(entries: list[PrivacyRelease], delta: float | None) -> tuple[float, float]:
    if not entries:
        return 0.0, 0.0
    basic_eps = sum(e.epsilon for e in entries)
    basic_delta = sum(e.delta for e in entries)
    gdp = [e for e in entries if e.mu is not None]
    other = [e for e in entries if e.mu is None]
    other_eps = sum(e.epsilon for e in other)
    other_delta = sum(e.delta for e in other)
    extra = sum(e.extra_delta for e in gdp)
    target = basic_delta if delta is None else float(delta)
    if not gdp:
        if delta is not None and delta < basic_delta:
            raise ValueError(f"cannot state the spend at delta={delta} < {basic_delta}")
        return basic_eps, basic_delta
    mu = compose_gdp(e.mu for e in gdp)
    room = target - other_delta - extra
    if room <= 0:
        raise ValueError(f"cannot state the spend at delta={target}: the non-GDP part needs more")
    if math.isinf(mu):
        return math.inf, target
    eps = other_eps + gdp_epsilon(mu, min(room, 1 - 1e-12))
    if delta is None:
        eps = min(eps, basic_eps)
    return float(eps), float(target)


