r"""Privacy diagnostics: distance to closest record and an empirical privacy audit.

Distance to closest record (DCR)
--------------------------------
:func:`distance_to_closest_record` compares how close synthetic rows come to the training rows
with how close they come to a holdout drawn from the same population.  A synthesizer that
memorises its training rows puts synthetic rows nearer to the training set than to the holdout
(share of synthetic rows closer to train than to holdout well above 1/2).  DCR is a heuristic,
NOT a privacy guarantee: a small gap does not prove privacy, it only fails to detect copying.

Empirical privacy audit
-----------------------
A mechanism :math:`M` is :math:`(\varepsilon, \delta)`-DP when for neighbouring datasets
:math:`D, D'` and every set :math:`S`,
:math:`P[M(D) \in S] \le e^{\varepsilon} P[M(D') \in S] + \delta`.  Run :math:`M` many times on
:math:`D` (with a canary row) and on :math:`D'` (without), compute a test statistic :math:`s`
(larger = "canary present") for each output and threshold it at :math:`t`:
:math:`\mathrm{TPR} = P[s > t \mid D]`, :math:`\mathrm{FPR} = P[s > t \mid D']`.  Applying the
definition to :math:`S = \{s > t\}` and to its complement with the datasets swapped gives two
lower bounds on :math:`\varepsilon` (Kairouz, Oh and Viswanath 2015; Jagielski, Ullman and Oprea
2020):

.. math::

    \varepsilon \ge \log\frac{\mathrm{TPR} - \delta}{\mathrm{FPR}}, \qquad
    \varepsilon \ge \log\frac{1 - \mathrm{FPR} - \delta}{1 - \mathrm{TPR}}.

Both grow with TPR and fall with FPR, so replacing the rates by a one-sided Clopper-Pearson
LOWER bound on TPR and UPPER bound on FPR (each at level :math:`1 - \alpha/2`, Bonferroni) gives a
bound that holds with probability at least :math:`1 - \alpha` (``confidence``).  Choosing the
threshold on the same trials would bias the bound upwards, so :func:`empirical_epsilon` chooses it
on one half of the trials and evaluates it on the other half (``method="split"``), or takes a
FIXED grid of thresholds and splits :math:`\alpha` over it (``method="bonferroni"``).

For a correct implementation of an :math:`(\varepsilon, \delta)`-DP mechanism the audited bound is
below the claimed :math:`\varepsilon` with probability at least ``confidence``; a bound above it
is evidence of a bug (or of an accountant that is wrong).  A bound far below the claim says
nothing: the test statistic may be weak, or the trials too few.

These diagnostics read the real data; their output is not differentially private.

References
----------
Clopper, C. J. and Pearson, E. S. "The use of confidence or fiducial limits illustrated in the
case of the binomial." Biometrika 26 (1934).
Kairouz, P., Oh, S. and Viswanath, P. "The Composition Theorem for Differential Privacy." ICML 2015.
Jagielski, M., Ullman, J. and Oprea, A. "Auditing Differentially Private Machine Learning: How
Private is Private SGD?" NeurIPS 2020.
Nasr, M., Song, S., Thakurta, A., Papernot, N. and Carlini, N. "Adversary Instantiation: Lower
Bounds for Differentially Private Machine Learning." IEEE S&P 2021.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import beta
from sklearn.neighbors import NearestNeighbors

from ._columns import as_frame, check_rows, layout_columns, unit_matrix

__all__ = [
    "AuditResult",
    "audit_mechanism",
    "audit_synthesizer",
    "clopper_pearson",
    "distance_to_closest_record",
    "empirical_epsilon",
]


# ---------------------------------------------------------------------------------------------
# distance to closest record


# a distance this small is a copy: the nearest-neighbour distances of identical rows round to ~1e-8
_COPY_TOL = 1e-6

def distance_to_closest_record(synthetic, train, holdout, schema=None, *, max_rows: int | None = 5000,
                               random_state: int = 0) -> dict:
    r"""Distance from each synthetic row to its closest training row and closest holdout row.

    Rows are encoded so that each column contributes at most 1 to the squared Euclidean distance
    (numeric columns scaled to [0, 1] over the public bounds, or the training range without a
    schema; categorical columns one-hot over :math:`\sqrt 2`).  The training set is subsampled
    to the holdout's size so that both reference sets are equally dense.

    Parameters
    ----------
    synthetic, train, holdout : DataFrame
        ``holdout`` must come from the same population as ``train`` and must not have been seen by
        the synthesizer.
    max_rows : int or None, default=5000
        Rows of each table used (random subsample).

    Returns
    -------
    dict
        ``dcr_train_median``, ``dcr_holdout_median``, ``dcr_train_p05``, ``dcr_holdout_p05``,
        ``share_closer_to_train`` (ties count one half; about 0.5 when the synthetic rows are no
        closer to the training rows than to fresh rows) and ``exact_copies_train`` (share of
        synthetic rows at distance 0 from a training row, up to the rounding of the distance
        computation: below 1e-6 in the scaled units, where distinct one-hot values are at least 1
        apart).

    Raises
    ------
    ValueError
        If ``synthetic``, ``train`` or ``holdout`` has no rows.
    """
    check_rows(synthetic=synthetic, train=train, holdout=holdout)
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be None or >= 1, got {max_rows!r}")
    train = as_frame(train)
    synthetic = as_frame(synthetic, columns=train.columns if not isinstance(synthetic, pd.DataFrame) else None)
    holdout = as_frame(holdout, columns=train.columns if not isinstance(holdout, pd.DataFrame) else None)
    layout = layout_columns(train, synthetic, schema, 20)
    rng = np.random.default_rng(random_state)
    n_ref = min(len(train), len(holdout))
    if max_rows is not None:
        n_ref = min(n_ref, int(max_rows))
    n_syn = len(synthetic) if max_rows is None else min(len(synthetic), int(max_rows))
    pick = lambda df, n: df.iloc[np.sort(rng.choice(len(df), n, replace=False))]  # noqa: E731
    S = unit_matrix(pick(synthetic, n_syn), layout)
    T = unit_matrix(pick(train, n_ref), layout)
    H = unit_matrix(pick(holdout, n_ref), layout)
    d_t = NearestNeighbors(n_neighbors=1).fit(T).kneighbors(S)[0][:, 0]
    d_h = NearestNeighbors(n_neighbors=1).fit(H).kneighbors(S)[0][:, 0]
    closer = np.mean(d_t < d_h) + 0.5 * np.mean(d_t == d_h)
    return {"dcr_train_median": float(np.median(d_t)), "dcr_holdout_median": float(np.median(d_h)),
            "dcr_train_p05": float(np.quantile(d_t, 0.05)), "dcr_holdout_p05": float(np.quantile(d_h, 0.05)),
            "share_closer_to_train": float(closer), "exact_copies_train": float(np.mean(d_t <= _COPY_TOL))}


# ---------------------------------------------------------------------------------------------
# Clopper-Pearson and the epsilon lower bound


def clopper_pearson(k, n, alpha: float, side: str) -> np.ndarray:
    r"""One-sided Clopper-Pearson bound on a binomial proportion (vectorised over ``k``).

    ``side="lower"``: the largest :math:`p` with :math:`P[\mathrm{Bin}(n, p) \ge k] \le \alpha`,
    i.e. :math:`B^{-1}(\alpha; k, n - k + 1)` (0 when :math:`k = 0`).  ``side="upper"``:
    :math:`B^{-1}(1 - \alpha; k + 1, n - k)` (1 when :math:`k = n`).  Each holds with probability
    at least :math:`1 - \alpha`.
    """
    k = np.asarray(k, dtype=np.float64)
    n = float(n)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if side == "lower":
        with np.errstate(invalid="ignore"):
            out = beta.ppf(alpha, np.maximum(k, 1e-300), n - k + 1)
        return np.where(k <= 0, 0.0, out)
    if side == "upper":
        with np.errstate(invalid="ignore"):
            out = beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1e-300))
        return np.where(k >= n, 1.0, out)
    raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")


def _eps_from_rates(tpr_lo: np.ndarray, fpr_hi: np.ndarray, delta: float) -> np.ndarray:
    """max of the two DP inequalities' bounds (0 where neither is positive)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(np.maximum(tpr_lo - delta, 0.0) / fpr_hi)
        b = np.log(np.maximum(1.0 - fpr_hi - delta, 0.0) / (1.0 - tpr_lo))
    a = np.where(np.isnan(a), -np.inf, a)
    b = np.where(np.isnan(b), -np.inf, b)
    return np.maximum(np.maximum(a, b), 0.0)


def _bounds_at(scores_with: np.ndarray, scores_without: np.ndarray, thresholds: np.ndarray, delta: float,
               alpha_each: float):
    """Counts, Clopper-Pearson rates and the epsilon bound at each threshold (sorted inputs)."""
    n1, n0 = len(scores_with), len(scores_without)
    k1 = n1 - np.searchsorted(scores_with, thresholds, side="right")
    k0 = n0 - np.searchsorted(scores_without, thresholds, side="right")
    tpr_lo = clopper_pearson(k1, n1, alpha_each, "lower")
    fpr_hi = clopper_pearson(k0, n0, alpha_each, "upper")
    return k1, k0, tpr_lo, fpr_hi, _eps_from_rates(tpr_lo, fpr_hi, delta)


def _check_scores(name: str, s) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64).ravel()
    if s.size < 2:
        raise ValueError(f"{name} needs at least two trials, got {s.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} must be finite")
    return s


def empirical_epsilon(scores_with_canary, scores_without, delta: float, confidence: float = 0.95, *,
                      method: str = "split", thresholds: Sequence[float] | None = None, max_thresholds: int = 2000,
                      random_state: int | None = 0, return_details: bool = False):
    r"""Lower bound on epsilon, with confidence ``confidence``, from two arrays of test statistics.

    Parameters
    ----------
    scores_with_canary, scores_without : array-like of float
        One test statistic per trial (larger = "canary present"), from runs on the dataset with the
        canary and on the neighbouring dataset without it.  Trials must be independent.
    delta : float
        The :math:`\delta` of the claim being audited.
    confidence : float, default=0.95
        The returned bound holds with at least this probability (over the trials), for any
        mechanism that really is :math:`(\varepsilon, \delta)`-DP.
    method : {"split", "bonferroni"}, default="split"
        ``"split"``: each array is split at random into halves; the threshold maximising the bound
        on the first halves is evaluated on the second halves (honest: the evaluation trials did not
        choose it).  ``"bonferroni"``: all trials, a FIXED grid ``thresholds`` chosen before seeing
        the scores, and level :math:`\alpha / (2 |\text{grid}|)` for each rate.
    thresholds : sequence of float, optional
        Required for ``"bonferroni"``; for ``"split"`` an optional candidate set (default: the
        distinct scores of the selection halves, thinned to ``max_thresholds`` quantiles).
    random_state : int or None, default=0
        Seed of the split.
    return_details : bool, default=False
        Also return a dict with the threshold, counts and rates used.

    Returns
    -------
    float, or (float, dict)
        :math:`\max\bigl(0, \log\frac{\mathrm{TPR}_{lo} - \delta}{\mathrm{FPR}_{hi}},
        \log\frac{1 - \mathrm{FPR}_{hi} - \delta}{1 - \mathrm{TPR}_{lo}}\bigr)` at the chosen
        threshold, with one-sided Clopper-Pearson bounds at level :math:`1 - \alpha/2` each
        (:math:`\alpha = 1 - \text{confidence}`).

    References
    ----------
    Jagielski, Ullman and Oprea, NeurIPS 2020; Nasr et al., IEEE S&P 2021 (see the module
    docstring).
    """
    s1 = _check_scores("scores_with_canary", scores_with_canary)
    s0 = _check_scores("scores_without", scores_without)
    if not 0 <= float(delta) < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    if not 0 < float(confidence) < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    alpha = 1.0 - float(confidence)
    if method == "bonferroni":
        if thresholds is None:
            raise ValueError("method='bonferroni' needs a fixed grid of thresholds chosen before the trials")
        grid = np.asarray(thresholds, dtype=np.float64).ravel()
        a_each = alpha / (2 * grid.size)
        k1, k0, tlo, fhi, eps = _bounds_at(np.sort(s1), np.sort(s0), grid, float(delta), a_each)
        best = int(np.argmax(eps))
        details = {"method": method, "threshold": float(grid[best]), "n_with": s1.size, "n_without": s0.size,
                   "k_with": int(k1[best]), "k_without": int(k0[best]), "tpr_lower": float(tlo[best]),
                   "fpr_upper": float(fhi[best]), "n_thresholds": int(grid.size), "confidence": float(confidence)}
        return (float(eps[best]), details) if return_details else float(eps[best])
    if method != "split":
        raise ValueError(f"method must be 'split' or 'bonferroni', got {method!r}")
    rng = np.random.default_rng(random_state)
    p1, p0 = rng.permutation(s1.size), rng.permutation(s0.size)
    sel1, ev1 = np.sort(s1[p1[: s1.size // 2]]), np.sort(s1[p1[s1.size // 2:]])
    sel0, ev0 = np.sort(s0[p0[: s0.size // 2]]), np.sort(s0[p0[s0.size // 2:]])
    if thresholds is None:
        cand = np.unique(np.concatenate([sel1, sel0]))
        if cand.size > max_thresholds:
            cand = np.unique(np.quantile(cand, np.linspace(0, 1, max_thresholds)))
        # also "everything positive": a threshold just below the smallest score
        cand = np.concatenate([[np.nextafter(cand[0], -np.inf)], cand])
    else:
        cand = np.asarray(thresholds, dtype=np.float64).ravel()
    # selection: the same Clopper-Pearson criterion on the selection halves (favours thresholds
    # with enough counts to give a tight bound on the evaluation halves)
    *_, eps_sel = _bounds_at(sel1, sel0, cand, float(delta), alpha / 2)
    t = cand[int(np.argmax(eps_sel))]
    k1, k0, tlo, fhi, eps = _bounds_at(ev1, ev0, np.array([t]), float(delta), alpha / 2)
    value = float(eps[0])
    if not return_details:
        return value
    details = {"method": method, "threshold": float(t), "n_with": int(ev1.size), "n_without": int(ev0.size),
               "k_with": int(k1[0]), "k_without": int(k0[0]), "tpr_lower": float(tlo[0]),
               "fpr_upper": float(fhi[0]), "tpr": float(k1[0] / ev1.size), "fpr": float(k0[0] / ev0.size),
               "selection_bound": float(eps_sel.max()), "confidence": float(confidence)}
    return value, details


# ---------------------------------------------------------------------------------------------
# audit drivers


@dataclass
class AuditResult:
    """Outcome of :func:`audit_mechanism` / :func:`audit_synthesizer`.

    Attributes
    ----------
    epsilon_lower_bound : float
        :func:`empirical_epsilon` of the trials.
    claimed_epsilon : float or None
        The guarantee being audited (when given).
    delta, confidence : float
    scores_with_canary, scores_without : ndarray
        The test statistic of every trial.
    details : dict
        Threshold, counts and rates (see :func:`empirical_epsilon`).
    """

    epsilon_lower_bound: float
    claimed_epsilon: float | None
    delta: float
    confidence: float
    scores_with_canary: np.ndarray = field(repr=False)
    scores_without: np.ndarray = field(repr=False)
    details: dict = field(default_factory=dict)

    @property
    def consistent(self) -> bool | None:
        """``lower bound <= claimed epsilon`` (None without a claim): False is evidence of a bug."""
        if self.claimed_epsilon is None:
            return None
        return bool(self.epsilon_lower_bound <= self.claimed_epsilon)


def audit_mechanism(mechanism: Callable, value_with, value_without, *, n_trials: int, delta: float,
                    claimed_epsilon: float | None = None, statistic: Callable | None = None,
                    confidence: float = 0.95, random_state: int = 0, method: str = "split") -> AuditResult:
    r"""Audit a vectorised release mechanism on two neighbouring inputs.

    Parameters
    ----------
    mechanism : callable
        ``mechanism(values, rng) -> releases``: ``values`` has shape ``(n_trials, *value.shape)``
        (the input repeated), ``rng`` is a :class:`numpy.random.Generator`; one independent release
        per leading index.  E.g. ``lambda v, rng: gaussian_mechanism(v, sigma, rng)``.
    value_with, value_without : array-like
        The exact (pre-noise) statistic on the dataset with the canary and on its neighbour.
    n_trials : int
        Releases per side.
    statistic : callable, optional
        ``statistic(releases) -> (n_trials,)`` scores, larger = canary present.  Default: the
        projection on the direction of the difference,
        :math:`\langle r - v', v - v'\rangle / \|v - v'\|` (the likelihood-ratio test for
        Gaussian noise).
    claimed_epsilon : float, optional
        Reported next to the bound (:attr:`AuditResult.consistent`).
    """
    v1 = np.asarray(value_with, dtype=np.float64)
    v0 = np.asarray(value_without, dtype=np.float64)
    if v1.shape != v0.shape:
        raise ValueError(f"value_with and value_without differ in shape: {v1.shape} vs {v0.shape}")
    n = _check_trials(n_trials)
    rng = np.random.default_rng(random_state)
    if statistic is None:
        diff = (v1 - v0).ravel()
        norm = np.linalg.norm(diff)
        direction = diff / norm if norm > 0 else diff

        def statistic(r):
            return (np.asarray(r, dtype=np.float64).reshape(len(r), -1) - v0.ravel()) @ direction

    r1 = mechanism(np.broadcast_to(v1, (n, *v1.shape)).copy(), rng)
    r0 = mechanism(np.broadcast_to(v0, (n, *v0.shape)).copy(), rng)
    s1, s0 = np.asarray(statistic(r1), dtype=np.float64), np.asarray(statistic(r0), dtype=np.float64)
    return _result(s1, s0, delta, claimed_epsilon, confidence, random_state, method)


def audit_synthesizer(fit_and_score: Callable, dataset_with, dataset_without, *, n_trials: int, delta: float,
                      claimed_epsilon: float | None = None, confidence: float = 0.95, random_state: int = 0,
                      method: str = "split", n_jobs: int | None = None) -> AuditResult:
    """Audit a whole training pipeline: ``n_trials`` independent fits on each neighbouring dataset.

    Parameters
    ----------
    fit_and_score : callable
        ``fit_and_score(dataset, seed) -> float``: fit the synthesizer (or model) on ``dataset``
        with randomness from ``seed`` and return the test statistic (larger = canary present), for
        example the negative loss of the canary row under the fitted model, or the generated
        density near the canary.  The statistic must not depend on which dataset it was given
        other than through the fit.
    dataset_with, dataset_without : any
        Neighbouring datasets (with and without the canary row), passed through unchanged.
    n_trials : int
        Fits per dataset (the bound needs hundreds to thousands of trials to have power).
    n_jobs : int or None
        Parallel fits through joblib (``None``: sequential).

    Seeds: trial ``i`` on either dataset uses a distinct seed drawn from ``random_state``.
    """
    n = _check_trials(n_trials)
    seeds = np.random.default_rng(random_state).choice(2**31 - 1, size=2 * n, replace=False)
    jobs = [(dataset_with, int(s)) for s in seeds[:n]] + [(dataset_without, int(s)) for s in seeds[n:]]
    if n_jobs in (None, 1):
        scores = [float(fit_and_score(d, s)) for d, s in jobs]
    else:
        from joblib import Parallel, delayed

        scores = Parallel(n_jobs=n_jobs)(delayed(fit_and_score)(d, s) for d, s in jobs)
    scores = np.asarray(scores, dtype=np.float64)
    return _result(scores[:n], scores[n:], delta, claimed_epsilon, confidence, random_state, method)


def _check_trials(n_trials) -> int:
    if isinstance(n_trials, bool) or int(n_trials) != n_trials or n_trials < 4:
        raise ValueError(f"n_trials must be an integer >= 4, got {n_trials!r}")
    return int(n_trials)


def _result(s1, s0, delta, claimed, confidence, random_state, method) -> AuditResult:
    if method != "split":
        raise ValueError("the audit drivers choose the threshold on a split of the trials (method='split')")
    eps, details = empirical_epsilon(s1, s0, delta, confidence, method="split", random_state=random_state,
                                     return_details=True)
    return AuditResult(eps, None if claimed is None else float(claimed), float(delta), float(confidence), s1, s0,
                       details)
