"""The privacy ledger: one account of every release, shared across clones and searches."""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from scipy import special

from ..exceptions import LedgerCopyWarning, PrivacyBudgetExceeded
from .accounting import (
    compose_gdp,
    gdp_epsilon,
    rdp_to_epsilon,
    subsampled_gaussian_epsilon,
    subsampled_gaussian_rdp,
)

__all__ = ["PrivacyRelease", "PrivacyLedger", "Reservation", "ADD_REMOVE"]

ADD_REMOVE = "add/remove one row"

_ACCOUNTING = (
    "Gaussian (mu-GDP) releases compose exactly, mu = sqrt(sum mu_i^2), converted with the analytic "
    "Gaussian formula; subsampled Gaussian compositions are bounded by the smaller of their own "
    "accountants' epsilons and their joint RDP; the groups add up by basic composition, and the total "
    "is never above basic composition of all releases"
)


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
        Parameters of a subsampled Gaussian composition; when all three numbers are given the
        ledger can also compose such releases jointly (RDP).
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

    def __post_init__(self):
        eps, dlt = float(self.epsilon), float(self.delta)
        if math.isnan(eps) or eps < 0:
            raise ValueError(f"release {self.name!r}: epsilon must be >= 0, got {self.epsilon}")
        if not 0.0 <= dlt <= 1.0:
            raise ValueError(f"release {self.name!r}: delta must be in [0, 1], got {self.delta}")
        if self.mu is not None and (math.isnan(float(self.mu)) or float(self.mu) < 0):
            raise ValueError(f"release {self.name!r}: mu must be >= 0, got {self.mu}")
        if not 0.0 <= float(self.extra_delta) <= dlt:
            raise ValueError(f"release {self.name!r}: extra_delta must be in [0, delta], "
                             f"got {self.extra_delta}")

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

    @classmethod
    def subsampled(cls, name: str, *, noise_multiplier: float, sample_rate: float, steps: int,
                   delta: float, accountant: str = "prv", sensitivity: float | None = None,
                   mechanism: str = "subsampled_gaussian", owner: str = "") -> PrivacyRelease:
        """``steps`` Poisson-subsampled Gaussian steps (DP-SGD), epsilon from ``accountant``."""
        eps = subsampled_gaussian_epsilon(noise_multiplier, sample_rate, steps, delta, accountant)
        noise_std = None if sensitivity is None else float(noise_multiplier) * float(sensitivity)
        return cls(name=name, mechanism=mechanism, epsilon=eps, delta=float(delta),
                   sensitivity=sensitivity, noise_std=noise_std,
                   noise_multiplier=float(noise_multiplier), sample_rate=float(sample_rate),
                   steps=int(steps), accountant=accountant, owner=owner)

    def to_dict(self) -> dict:
        return asdict(self)


class PrivacyLedger:
    r"""Records every release and refuses to overspend.

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
    Composition (:meth:`spent`), at the total delta :math:`D` (by default the sum of the
    entries' deltas).  Releases are grouped: :math:`\mu`-GDP releases :math:`G` (each with an
    ``extra_delta`` :math:`e_i`), subsampled Gaussian compositions :math:`S` and the others
    :math:`O`.  The reported epsilon is the smallest of these valid bounds:

    * basic composition of every entry, :math:`\sum_i \varepsilon_i` (when :math:`D \ge \sum_i
      \delta_i`);
    * :math:`\varepsilon_G + \varepsilon_S + \sum_O \varepsilon_i`, where :math:`G` is exactly
      :math:`\sqrt{\sum_G \mu_i^2}`-GDP, stated at
      :math:`D - \sum_{S \cup O}\delta_i - \sum_G e_i`, and :math:`\varepsilon_S` is the smaller
      of :math:`\sum_S \varepsilon_i` and the joint RDP bound of :math:`S` at :math:`\sum_S
      \delta_i`;
    * the joint RDP bound of :math:`G \cup S` (a :math:`\mu`-GDP release has the RDP curve
      :math:`\alpha\mu^2/2`) at :math:`D - \sum_O \delta_i - \sum_G e_i`, plus
      :math:`\sum_O \varepsilon_i`.

    Reservations: a fit that releases at the end of a long computation (DP-SGD) calls
    :meth:`reserve` with its plan before it draws any noise or takes a step (checked and recorded
    atomically, so concurrent fits cannot spend the same budget), then :meth:`settle` with what
    it actually released.  One level per fit reserves: :func:`~skdpgen.dpsgd.train_dpsgd` reserves
    its own run when given a ledger; an estimator that plans several releases reserves them all
    and calls the engine with ``ledger=None``, so no release is recorded twice.

    The ``extra_delta`` of thresholding composes additively (when no key is released the
    release is the Gaussian mechanism; see ``doc/privacy.md``).
    Processes do not share memory: with ``GridSearchCV(n_jobs>1)`` and a process backend the
    workers' records do not come back; use ``n_jobs=1`` or a threading backend.  A pickled and
    unpickled ledger is a copy (with the same records), not the same account.
    """

    def __init__(self, max_epsilon: float | None = None, max_delta: float | None = None):
        for name, value in (("max_epsilon", max_epsilon), ("max_delta", max_delta)):
            if value is not None and (math.isnan(float(value)) or float(value) < 0):
                raise ValueError(f"{name} must be None or >= 0, got {value}")
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
        # in the parent process, where a user sees it (a loky worker's warnings may never reach a notebook)
        warnings.warn("a PrivacyLedger is being pickled: the unpickled ledger is a separate copy, whose records do "
                      "not come back here and which max_epsilon does not bound across processes. With "
                      "GridSearchCV/cross_val_score(n_jobs>1) and joblib's process backend the workers' fits are "
                      "NOT recorded in this ledger: use n_jobs=1 or joblib.parallel_backend('threading'). (Expected "
                      "when saving a fitted model: see skdpgen.LedgerCopyWarning.)", LedgerCopyWarning, stacklevel=2)
        with self._lock:
            state = self.__dict__.copy()
            state["_entries"] = list(self._entries)
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
        """Composed ``(epsilon, delta)`` of everything recorded (at ``delta`` when given)."""
        with self._lock:
            return _compose(self._entries, delta)

    def check(self, releases: Iterable[PrivacyRelease]) -> tuple[float, float]:
        """The spend after ``releases``; raises if it exceeds the budget.  Records nothing."""
        with self._lock:
            return self._check_entries(self._entries + list(releases))

    def _check_entries(self, entries: list[PrivacyRelease]) -> tuple[float, float]:
        """The spend of ``entries`` (the ledger's records after a change); raises if over the budget."""
        eps, dlt = _compose(entries, None)
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
        releases = _releases(releases)
        with self._lock:
            self.check(releases)
            self._entries.extend(releases)

    def reserve(self, releases: Iterable[PrivacyRelease]) -> Reservation:
        """Check the budget and record the PLANNED ``releases`` atomically, like :meth:`record`.

        For a fit that releases something only after a long computation (DP-SGD): reserve the plan
        before the first noisy step, then :meth:`settle` the reservation with what was actually
        released.  Between the two, the plan counts in :meth:`spent` and :meth:`check`, so a
        concurrent fit cannot spend the same budget.  Raises
        :class:`~skdpgen.exceptions.PrivacyBudgetExceeded` (nothing recorded) when the plan does not fit.

        Returns
        -------
        Reservation
            The token to pass to :meth:`settle`.
        """
        releases = _releases(releases)
        with self._lock:
            self.check(releases)
            self._entries.extend(releases)
            return Reservation(self, releases)

    def settle(self, reservation: Reservation, releases: Iterable[PrivacyRelease], *, check: bool = False) -> None:
        """Replace the entries of ``reservation`` by ``releases`` (at their place in the record), atomically.

        ``releases`` is what was actually released: fewer steps after early stopping, the whole plan
        when training failed part-way, nothing when nothing left the fit (this cancels the
        reservation).  Never leave out a release that happened.  By default nothing is refused (what
        was released must be recorded); with ``check=True`` the budget is checked with ``releases``
        in place of the reservation and :class:`~skdpgen.exceptions.PrivacyBudgetExceeded` is raised
        (nothing changed): for narrowing a reservation to an exact plan before anything is released.
        A reservation may be settled several times; each time replaces what it held.
        """
        releases = _releases(releases)
        if not isinstance(reservation, Reservation) or reservation._ledger is not self:
            raise ValueError("settle needs a Reservation made by this ledger's reserve()")
        with self._lock:
            claimed: list[int] = []
            for r in reservation.releases:
                i = next((i for i, e in enumerate(self._entries) if e is r and i not in claimed), None)
                if i is None:
                    raise ValueError(f"the reserved release {r.name!r} is no longer in this ledger")
                claimed.append(i)
            at = min(claimed, default=len(self._entries))  # no claimed entry before it: same index in kept
            gone = set(claimed)
            kept = [e for i, e in enumerate(self._entries) if i not in gone]
            entries = kept[:at] + releases + kept[at:]
            if check:
                self._check_entries(entries)
            self._entries = entries
            reservation.releases = tuple(releases)

    def report(self, delta: float | None = None) -> dict:
        """The whole account as a plain dict (JSON-serialisable).

        Keys: ``epsilon``, ``delta`` (the composed spend, see :meth:`spent`), ``neighbouring``
        (the relation of the releases, ``"mixed: ..."`` if they differ), ``n_releases``,
        ``releases`` (one dict per release, oldest first), ``max_epsilon``, ``max_delta`` and
        ``accounting`` (how the releases were composed).
        """
        with self._lock:
            entries = list(self._entries)
            eps, dlt = _compose(entries, delta)
        relations = sorted({e.neighbouring for e in entries})
        if not relations:
            neighbouring = ADD_REMOVE
        elif len(relations) == 1:
            neighbouring = relations[0]
        else:
            neighbouring = "mixed: " + "; ".join(relations)
        return {
            "epsilon": float(eps),
            "delta": float(dlt),
            "neighbouring": neighbouring,
            "n_releases": len(entries),
            "releases": [e.to_dict() for e in entries],
            "max_epsilon": self.max_epsilon,
            "max_delta": self.max_delta,
            "accounting": _ACCOUNTING,
        }

    def to_frame(self):
        """The records as a :class:`pandas.DataFrame`, one row per release."""
        import pandas as pd

        columns = [f.name for f in fields(PrivacyRelease)]
        return pd.DataFrame([r.to_dict() for r in self.entries], columns=columns)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        eps, dlt = self.spent()
        return (f"PrivacyLedger(max_epsilon={self.max_epsilon}, max_delta={self.max_delta}; "
                f"{len(self)} releases, spent epsilon={eps:.4g}, delta={dlt:.3g})")


class Reservation:
    """A token of :meth:`PrivacyLedger.reserve`: the planned releases, recorded until settled.

    ``releases`` holds what the reservation currently stands for in its ledger (the plan, then what
    :meth:`PrivacyLedger.settle` put in its place).  Not meant to be pickled or shared between ledgers.
    """

    def __init__(self, ledger: PrivacyLedger, releases: list[PrivacyRelease]):
        self._ledger = ledger
        self.releases: tuple[PrivacyRelease, ...] = tuple(releases)

    def __repr__(self) -> str:
        return f"Reservation({[r.name for r in self.releases]})"


def _releases(releases: Iterable[PrivacyRelease]) -> list[PrivacyRelease]:
    out = list(releases)
    for r in out:
        if not isinstance(r, PrivacyRelease):
            raise TypeError(f"a ledger records PrivacyRelease objects, got {type(r).__name__}")
    return out


def _is_subsampled(e: PrivacyRelease) -> bool:
    return (e.mu is None and e.noise_multiplier is not None and e.sample_rate is not None
            and e.steps is not None)


def _rdp_curve(e: PrivacyRelease) -> np.ndarray:
    if e.mu is not None:  # mu-GDP: the Gaussian mechanism with noise multiplier 1/mu, RDP alpha mu^2/2
        sigma = math.inf if e.mu == 0 else 1.0 / e.mu
        return subsampled_gaussian_rdp(sigma, 1.0, 1)
    return subsampled_gaussian_rdp(e.noise_multiplier, e.sample_rate, e.steps)


def _rdp_epsilon(group: list[PrivacyRelease], delta: float) -> float:
    if not 0 < delta < 1:
        return math.inf
    return rdp_to_epsilon(sum(_rdp_curve(e) for e in group), delta)


def _shift(extra: float) -> float:
    """The epsilon shift -log(1 - e) that covers an additive (thresholding) delta ``e`` both ways."""
    return -math.log1p(-extra) if extra < 1 else math.inf


def _gdp_epsilon_with_extra(mu: float, room: float, extra: float) -> float:
    """Epsilon of mu-GDP plus an additive ``extra`` delta, stated at ``room + extra``.

    With the differing row present, the output is the Gaussian mechanism's except on an event of
    probability at most ``extra`` (a key of that row alone crosses the threshold): the
    direction P - e^eps Q gains exactly ``extra``; the direction Q - e^eps P sees P scaled by
    (1 - extra), i.e. the Gaussian curve at eps - t, t = -log(1 - extra), and
    delta_G(eps - t) <= delta_G(eps) + t Phi(-(eps - t)/mu + mu/2), which stays within
    ``extra`` except in degenerate regimes, where eps is raised by t.
    """
    eps = gdp_epsilon(mu, min(room, 1 - 1e-12))
    if extra > 0 and math.isfinite(eps):
        t = _shift(extra)
        if t * float(special.ndtr(-(eps - t) / mu + mu / 2)) > extra:
            eps += t
    return eps


def _compose(entries: list[PrivacyRelease], delta: float | None) -> tuple[float, float]:
    if delta is not None and (math.isnan(float(delta)) or not 0 <= float(delta) <= 1):
        raise ValueError(f"delta must be in [0, 1], got {delta}")
    if not entries:
        return 0.0, 0.0 if delta is None else float(delta)
    basic_eps = math.fsum(e.epsilon for e in entries)
    basic_delta = math.fsum(e.delta for e in entries)
    target = basic_delta if delta is None else float(delta)
    gdp = [e for e in entries if e.mu is not None]
    sub = [e for e in entries if _is_subsampled(e)]
    other = [e for e in entries if e.mu is None and not _is_subsampled(e)]
    o_eps, o_delta = math.fsum(e.epsilon for e in other), math.fsum(e.delta for e in other)
    s_eps, s_delta = math.fsum(e.epsilon for e in sub), math.fsum(e.delta for e in sub)
    extra = math.fsum(e.extra_delta for e in gdp)

    candidates = []
    if target >= basic_delta * (1 - 1e-12):
        candidates.append(basic_eps)
    if sub:
        s_eps = min(s_eps, _rdp_epsilon(sub, s_delta))
    if gdp:
        mu = compose_gdp(e.mu for e in gdp)
        room = target - o_delta - s_delta - extra
        if room > 0:
            g_eps = math.inf if math.isinf(mu) else _gdp_epsilon_with_extra(mu, room, extra)
            candidates.append(o_eps + s_eps + g_eps)
        if sub:  # all Gaussian releases together under RDP
            room = target - o_delta - extra
            candidates.append(o_eps + _rdp_epsilon(gdp + sub, min(room, 1 - 1e-12)) + _shift(extra))
    elif target >= (o_delta + s_delta) * (1 - 1e-12):
        candidates.append(o_eps + s_eps)
    if not candidates or all(math.isnan(c) for c in candidates):
        raise ValueError(f"cannot state the spend at delta={target}: the releases need more delta "
                         f"(sum of their deltas {basic_delta:.3g})")
    return float(min(c for c in candidates if not math.isnan(c))), float(target)
