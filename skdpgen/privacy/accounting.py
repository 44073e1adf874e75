r"""Privacy accounting: exact Gaussian (GDP) calibration and subsampled-Gaussian accountants.

A Gaussian release of a statistic with L2 sensitivity :math:`\Delta` and noise standard deviation
:math:`s` is exactly :math:`\mu`-GDP with :math:`\mu = \Delta / s` (Dong, Roth & Su 2022), and
:math:`k` such releases compose to :math:`\sqrt{\sum_i \mu_i^2}`-GDP.  A :math:`\mu`-GDP mechanism
is :math:`(\varepsilon, \delta(\varepsilon))`-DP for every :math:`\varepsilon \ge 0` with the exact
trade-off (the analytic Gaussian mechanism of Balle & Wang 2018)

.. math::

    \delta(\varepsilon) = \Phi\left(-\frac{\varepsilon}{\mu} + \frac{\mu}{2}\right)
        - e^{\varepsilon}\, \Phi\left(-\frac{\varepsilon}{\mu} - \frac{\mu}{2}\right).

Subsampled, repeated Gaussian mechanisms (DP-SGD, stochastic VIPS) are accounted with Opacus's
PRV or RDP accountants under Poisson sampling.  Noise is always calibrated to a target
:math:`(\varepsilon, \delta)` by bisection on the exact accountant, never by a loose closed form.

References
----------
Balle, B. and Wang, Y.-X. "Improving the Gaussian Mechanism for Differential Privacy: Analytical
Calibration and Optimal Denoising." ICML 2018.
Dong, J., Roth, A. and Su, W. J. "Gaussian Differential Privacy." JRSS-B 2022.
Gopi, S., Lee, Y. T. and Wutschitz, L. "Numerical Composition of Differential Privacy." NeurIPS 2021.
Mironov, I. "Renyi Differential Privacy." CSF 2017.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy import optimize, special

__all__ = [
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu",
    "compose_gdp",
    "calibrate_gaussian",
    "sparse_histogram_threshold",
    "sparse_histogram_delta",
    "subsampled_gaussian_epsilon",
    "calibrate_subsampled_noise",
]

_MU_MAX = 1e3


def _log_ndtr(x: float) -> float:
    return float(special.log_ndtr(x))


def gdp_delta(mu: float, epsilon: float) -> float:
    r"""Exact :math:`\delta(\varepsilon)` of a :math:`\mu`-GDP mechanism (Balle & Wang 2018, Thm. 8).

    Computed in log space so that it stays accurate for small :math:`\delta` and large
    :math:`\varepsilon`.
    """
    mu, epsilon = float(mu), float(epsilon)
    if mu < 0 or epsilon < 0:
        raise ValueError(f"mu and epsilon must be non-negative, got mu={mu}, epsilon={epsilon}")
    if mu == 0:
        return 0.0
    if math.isinf(epsilon):
        return 0.0
    if math.isinf(mu):
        return 1.0
    a = _log_ndtr(-epsilon / mu + mu / 2)
    b = epsilon + _log_ndtr(-epsilon / mu - mu / 2)
    if b >= a:  # rounding at the extremes; the true value is non-negative
        return 0.0
    return float(math.exp(a) * -math.expm1(b - a))


def gdp_epsilon(mu: float, delta: float) -> float:
    r"""Smallest :math:`\varepsilon \ge 0` at which a :math:`\mu`-GDP mechanism is :math:`(\varepsilon,\delta)`-DP."""
    mu, delta = float(mu), float(delta)
    _check_delta(delta, allow_zero=False)
    if mu == 0:
        return 0.0
    if math.isinf(mu):
        return math.inf
    if gdp_delta(mu, 0.0) <= delta:
        return 0.0
    hi = max(1.0, mu * mu)
    while gdp_delta(mu, hi) > delta:
        hi *= 2.0
    return float(optimize.brentq(lambda e: gdp_delta(mu, e) - delta, 0.0, hi, xtol=1e-14, rtol=1e-13))


def gdp_mu(epsilon: float, delta: float) -> float:
    r"""Largest :math:`\mu` such that :math:`\mu`-GDP implies :math:`(\varepsilon,\delta)`-DP.

    ``epsilon=inf`` gives ``inf`` (no privacy, no noise).
    """
    epsilon, delta = float(epsilon), float(delta)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    _check_delta(delta, allow_zero=False)
    if math.isinf(epsilon):
        return math.inf
    lo, hi = 0.0, 1.0
    while gdp_delta(hi, epsilon) <= delta:
        lo, hi = hi, 2.0 * hi
        if hi > _MU_MAX:
            return _MU_MAX
    return float(optimize.brentq(lambda m: gdp_delta(m, epsilon) - delta, lo, hi, xtol=1e-14, rtol=1e-13))


def compose_gdp(mus: Iterable[float]) -> float:
    r"""Exact composition of GDP mechanisms: :math:`\mu = \sqrt{\sum_i \mu_i^2}`."""
    return float(math.sqrt(sum(float(m) ** 2 for m in mus)))


def calibrate_gaussian(sensitivity: float, epsilon: float, delta: float, n_releases: int = 1) -> float:
    r"""Noise standard deviation so that ``n_releases`` Gaussian releases compose to (epsilon, delta).

    Each release has L2 sensitivity ``sensitivity``; the composition is exactly
    :math:`\sqrt{k}\,\Delta/s`-GDP, so :math:`s = \sqrt{k}\,\Delta / \mu(\varepsilon,\delta)`.
    Returns ``0.0`` for ``epsilon=inf``.
    """
    if sensitivity < 0:
        raise ValueError(f"sensitivity must be >= 0, got {sensitivity}")
    if n_releases < 1:
        raise ValueError(f"n_releases must be >= 1, got {n_releases}")
    mu = gdp_mu(epsilon, delta)
    if math.isinf(mu):
        return 0.0
    return float(sensitivity * math.sqrt(n_releases) / mu)


def sparse_histogram_threshold(noise_std: float, delta: float, max_new_keys: int = 1) -> float:
    r"""Release threshold :math:`\tau` of a Gaussian sparse (thresholded) histogram.

    Under add/remove-one-row, a key held by the differing row alone has count 1 on one side
    and is absent on the other; it is released with probability :math:`\Phi((1-\tau)/s)`.  With
    at most ``max_new_keys`` such keys (one per categorical column), choosing
    :math:`\tau = 1 + s\,\Phi^{-1}(1 - \delta / k)` bounds that probability by :math:`\delta`.
    """
    _check_delta(delta, allow_zero=False)
    return float(1.0 + noise_std * special.ndtri(1.0 - delta / max(int(max_new_keys), 1)))


def sparse_histogram_delta(noise_std: float, threshold: float, max_new_keys: int = 1) -> float:
    """The additive delta of thresholding: ``max_new_keys * Phi((1 - threshold) / noise_std)``."""
    if noise_std == 0:
        return 0.0 if threshold > 1 else 1.0
    return float(min(1.0, max_new_keys * special.ndtr((1.0 - threshold) / noise_std)))


def subsampled_gaussian_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "prv",
) -> float:
    """Epsilon of ``steps`` Poisson-subsampled Gaussian steps (Opacus PRV or RDP accountant)."""
    _check_delta(delta, allow_zero=False)
    if noise_multiplier == 0:
        return math.inf
    if steps == 0:
        return 0.0
    acc = _make_accountant(accountant)
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    if accountant == "prv":
        return float(acc.get_epsilon(delta=delta, eps_error=1e-3))
    return float(acc.get_epsilon(delta=delta))


def calibrate_subsampled_noise(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "prv",
    rtol: float = 1e-3,
) -> float:
    """Smallest noise multiplier whose subsampled composition stays within (epsilon, delta).

    Bisection on :func:`subsampled_gaussian_epsilon`; the returned multiplier always satisfies
    the target (it is the upper end of the final bracket).  ``epsilon=inf`` gives ``0.0``.
    """
    if math.isinf(epsilon):
        return 0.0
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    lo, hi = 0.0, 1.0
    while subsampled_gaussian_epsilon(hi, sample_rate, steps, delta, accountant) > epsilon:
        lo, hi = hi, 2.0 * hi
        if hi > 1e4:
            raise ValueError("no noise multiplier below 1e4 reaches the target epsilon")
    while (hi - lo) > rtol * hi:
        mid = 0.5 * (lo + hi)
        if subsampled_gaussian_epsilon(mid, sample_rate, steps, delta, accountant) > epsilon:
            lo = mid
        else:
            hi = mid
    return float(hi)


def _make_accountant(name: str):
    from opacus.accountants import PRVAccountant, RDPAccountant

    if name == "prv":
        return PRVAccountant()
    if name == "rdp":
        return RDPAccountant()
    raise ValueError(f"accountant must be 'prv' or 'rdp', got {name!r}")


def _check_delta(delta: float, allow_zero: bool) -> None:
    ok = (0.0 <= delta < 1.0) if allow_zero else (0.0 < delta < 1.0)
    if not ok or np.isnan(delta):
        raise ValueError(f"delta must be in {'[0' if allow_zero else '(0'}, 1), got {delta}")
