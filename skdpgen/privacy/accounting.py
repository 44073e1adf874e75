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

import functools
import math
import warnings
from collections.abc import Callable, Iterable

import numpy as np
from scipy import optimize, special

__all__ = [
    "RDP_ORDERS",
    "gdp_delta",
    "gdp_log_delta",
    "gdp_epsilon",
    "gdp_mu",
    "compose_gdp",
    "calibrate_gaussian",
    "sparse_histogram_threshold",
    "sparse_histogram_delta",
    "subsampled_gaussian_rdp",
    "rdp_to_epsilon",
    "subsampled_gaussian_epsilon",
    "calibrate_subsampled_noise",
]

_MU_MAX = 1e3
_TINY_LOG = -1e300  # stands for log(0) inside root finders, which need finite values
# PRV discretisation: at most this many grid points (about 160 bytes each at the peak)
_PRV_MAX_POINTS = 2_000_000
_PRV_REL_EPS_ERROR = 1e-3

#: RDP orders used by the RDP accountant: Opacus's default orders (1.1 ... 63) widened at both
#: ends, so that very weak (orders near 1) and very strong (large orders) privacy are not cut off.
RDP_ORDERS: tuple[float, ...] = tuple(
    [1.01, 1.02, 1.03, 1.05, 1.07]
    + [1 + x / 10.0 for x in range(1, 100)]
    + list(range(12, 64))
    + [64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024]
)


# ---------------------------------------------------------------------------------------------
# validation


def _real(name: str, x, *, lo: float = 0.0, lo_open: bool = False, allow_inf: bool = True) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {x!r}") from None
    if math.isnan(x):
        raise ValueError(f"{name} must be a number, got NaN")
    if (x <= lo) if lo_open else (x < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo:g}, got {x}")
    if math.isinf(x) and not allow_inf:
        raise ValueError(f"{name} must be finite, got {x}")
    return x


def _check_delta(delta, allow_zero: bool = False) -> float:
    try:
        d = float(delta)
    except (TypeError, ValueError):
        raise ValueError(f"delta must be a real number, got {delta!r}") from None
    ok = (0.0 <= d < 1.0) if allow_zero else (0.0 < d < 1.0)
    if not ok:  # NaN fails both comparisons
        raise ValueError(f"delta must be in {'[0' if allow_zero else '(0'}, 1), got {d}")
    return d


def _check_epsilon(epsilon) -> float:
    return _real("epsilon", epsilon, lo=0.0, lo_open=True)


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not float(steps).is_integer() or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    return int(steps)


def _check_sample_rate(sample_rate) -> float:
    q = _real("sample_rate", sample_rate, lo=0.0, lo_open=True, allow_inf=False)
    if q > 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {q}")
    return q


def _check_accountant(name) -> str:
    if name not in ("prv", "rdp"):
        raise ValueError(f"accountant must be 'prv' or 'rdp', got {name!r}")
    return name


# ---------------------------------------------------------------------------------------------
# Gaussian differential privacy


def _log_ndtr(x: float) -> float:
    return float(special.log_ndtr(x))


def gdp_log_delta(mu: float, epsilon: float) -> float:
    r"""Natural logarithm of :func:`gdp_delta`, accurate where :math:`\delta` underflows.

    With :math:`a = \log\Phi(-\varepsilon/\mu + \mu/2)` and
    :math:`b = \varepsilon + \log\Phi(-\varepsilon/\mu - \mu/2)`,
    :math:`\log\delta = a + \log(1 - e^{b - a})`; ``-inf`` when :math:`\delta = 0`.
    """
    mu = _real("mu", mu)
    epsilon = _real("epsilon", epsilon)
    if mu == 0 or math.isinf(epsilon):
        return -math.inf
    if math.isinf(mu):
        return 0.0
    a = _log_ndtr(-epsilon / mu + mu / 2)
    b = epsilon + _log_ndtr(-epsilon / mu - mu / 2)
    if abs(a) > 1e4 * abs(b - a):
        # the difference of the two logs has lost more than ~1e-12 relative: integrate instead
        return _log_delta_by_quadrature(mu, epsilon)
    if b >= a:  # rounding at the extremes; the true value is >= 0 and below rounding
        return -math.inf
    return float(a + math.log(-math.expm1(b - a)))


def _log_delta_by_quadrature(mu: float, epsilon: float) -> float:
    r""":math:`\log\delta` from the privacy-loss integral, for tiny :math:`\mu/x` (no cancellation).

    With :math:`x = arepsilon/\mu - \mu/2`,
    :math:`\delta = arphi(x) \int_0^\infty e^{-x u - u^2/2} (1 - e^{-\mu u})\, du`
    (substitute :math:`s = x + u` in :math:`\int_x^\infty arphi(s)(1 - e^{arepsilon - \mu s +
    \mu^2/2}) ds`); the integrand is positive, so quadrature keeps full relative precision.
    """
    from scipy import integrate

    x = epsilon / mu - mu / 2
    c = max(1.0, x)  # the integrand lives on u ~ 1/x: rescale u = v / c

    def integrand(v: float) -> float:
        u = v / c
        return math.exp(-x * u - u * u / 2) * -math.expm1(-mu * u)

    peak = max(0.0, -x) * c  # for x < 0 the Gaussian factor peaks at u = -x
    pieces = [0.0, peak + 1.0, peak + 8.0, peak + 40.0]
    total = sum(integrate.quad(integrand, lo, hi, epsabs=0.0, epsrel=1e-13, limit=200)[0]
                for lo, hi in zip(pieces, pieces[1:], strict=False))
    total += integrate.quad(integrand, pieces[-1], math.inf, epsabs=0.0, epsrel=1e-13, limit=200)[0]
    if not total > 0:
        return -math.inf
    return float(-x * x / 2 - 0.5 * math.log(2 * math.pi) + math.log(total / c))


def gdp_delta(mu: float, epsilon: float) -> float:
    r"""Exact :math:`\delta(\varepsilon)` of a :math:`\mu`-GDP mechanism (Balle & Wang 2018, Thm. 8).

    :math:`\delta(\varepsilon) = \Phi(-\varepsilon/\mu + \mu/2) - e^{\varepsilon}\,
    \Phi(-\varepsilon/\mu - \mu/2)`, computed in log space (:func:`gdp_log_delta`) so that it
    keeps full relative precision for tiny :math:`\delta` and large :math:`\varepsilon`
    (relative error about :math:`10^{-13}` for :math:`\mu \ge 10^{-4}`).
    ``mu=0`` gives 0, ``mu=inf`` gives 1 (for finite ``epsilon``).
    """
    return float(math.exp(gdp_log_delta(mu, epsilon)))


def _root_log(f: Callable[[float], float], lo: float, hi: float) -> float:
    return float(optimize.brentq(f, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500))


def _clamped(value: float) -> float:
    return max(value, _TINY_LOG)


def gdp_epsilon(mu: float, delta: float) -> float:
    r"""Smallest :math:`\varepsilon \ge 0` at which :math:`\mu`-GDP is :math:`(\varepsilon,\delta)`-DP.

    Root of :math:`\log\delta(\varepsilon) = \log\delta`; the result is rounded up so that
    ``gdp_delta(mu, result) <= delta`` always holds.  ``mu=inf`` gives ``inf``.
    """
    mu = _real("mu", mu)
    delta = _check_delta(delta)
    if mu == 0:
        return 0.0
    if math.isinf(mu):
        return math.inf
    log_target = math.log(delta)

    def f(e: float) -> float:
        return _clamped(gdp_log_delta(mu, e)) - log_target

    if f(0.0) <= 0:
        return 0.0
    lo, hi = 0.0, max(1.0, mu * mu)
    while f(hi) > 0:
        lo, hi = hi, 2.0 * hi
    eps = _root_log(f, lo, hi)
    step = 4 * np.finfo(float).eps * max(eps, 1e-300)
    while f(eps) > 0 or gdp_delta(mu, eps) > delta:  # conservative: never exceed the target delta
        eps, step = eps + step, 2 * step
    return float(eps)


def gdp_mu(epsilon: float, delta: float) -> float:
    r"""Largest :math:`\mu` such that :math:`\mu`-GDP implies :math:`(\varepsilon,\delta)`-DP.

    Root of :math:`\log\delta_\mu(\varepsilon) = \log\delta` in :math:`\mu`, rounded down so that
    ``gdp_delta(result, epsilon) <= delta`` always holds (capped at 1000).  ``epsilon=inf`` gives
    ``inf`` (no privacy, no noise).
    """
    epsilon = _check_epsilon(epsilon)
    delta = _check_delta(delta)
    if math.isinf(epsilon):
        return math.inf
    log_target = math.log(delta)

    def f(m: float) -> float:
        return _clamped(gdp_log_delta(m, epsilon)) - log_target

    lo, hi = 0.5, 1.0
    while f(hi) <= 0:
        lo, hi = hi, 2.0 * hi
        if hi > _MU_MAX:
            if f(_MU_MAX) <= 0:  # the cap itself meets the target
                return _MU_MAX
            hi = _MU_MAX  # the root lies in [lo, cap]
            break
    while f(lo) > 0:
        lo, hi = lo / 2.0, lo
    mu = _root_log(f, lo, hi)
    step = 4 * np.finfo(float).eps * mu
    while f(mu) > 0 or gdp_delta(mu, epsilon) > delta:  # conservative: never exceed the target
        mu, step = mu - step, 2 * step
    return float(mu)


def compose_gdp(mus: Iterable[float]) -> float:
    r"""Exact composition of GDP mechanisms: :math:`\mu = \sqrt{\sum_i \mu_i^2}`."""
    return float(math.sqrt(sum(_real("mu", m) ** 2 for m in mus)))


def calibrate_gaussian(sensitivity: float, epsilon: float, delta: float, n_releases: int = 1) -> float:
    r"""Noise standard deviation so that ``n_releases`` Gaussian releases compose to (epsilon, delta).

    Each release has L2 sensitivity ``sensitivity``; the composition is exactly
    :math:`\sqrt{k}\,\Delta/s`-GDP, so :math:`s = \sqrt{k}\,\Delta / \mu(\varepsilon,\delta)`:
    the analytic Gaussian mechanism of Balle & Wang (2018).  Returns ``0.0`` for ``epsilon=inf``.
    """
    sensitivity = _real("sensitivity", sensitivity, allow_inf=False)
    if isinstance(n_releases, bool) or not float(n_releases).is_integer() or n_releases < 1:
        raise ValueError(f"n_releases must be an integer >= 1, got {n_releases!r}")
    mu = gdp_mu(epsilon, delta)
    if math.isinf(mu):
        return 0.0
    return float(sensitivity * math.sqrt(int(n_releases)) / mu)


# ---------------------------------------------------------------------------------------------
# thresholded (sparse) histograms


def sparse_histogram_threshold(noise_std: float, delta: float, max_new_keys: int = 1) -> float:
    r"""Release threshold :math:`\tau` of a Gaussian sparse (thresholded) histogram.

    Under add/remove-one-row, a key held by the differing row alone has count 1 on one side
    and is absent on the other; it is released with probability :math:`\Phi((1-\tau)/s)`.  With
    at most ``max_new_keys`` such keys (one per categorical column), choosing
    :math:`\tau = 1 + s\,\Phi^{-1}(1 - \delta / k)` bounds that probability by :math:`\delta`
    (computed as :math:`1 - s\,\Phi^{-1}(\delta/k)`, exact for tiny :math:`\delta`).
    Inverse of :func:`sparse_histogram_delta`.
    """
    noise_std = _real("noise_std", noise_std, allow_inf=False)
    delta = _check_delta(delta)
    k = _check_keys(max_new_keys)
    return float(1.0 - noise_std * special.ndtri(delta / k))


def sparse_histogram_delta(noise_std: float, threshold: float, max_new_keys: int = 1) -> float:
    """The additive delta of thresholding: ``max_new_keys * Phi((1 - threshold) / noise_std)``."""
    noise_std = _real("noise_std", noise_std, allow_inf=False)
    threshold = _real("threshold", threshold, lo=-math.inf)
    k = _check_keys(max_new_keys)
    if noise_std == 0:
        return 0.0 if threshold > 1 else 1.0
    return float(min(1.0, k * special.ndtr((1.0 - threshold) / noise_std)))


def _check_keys(max_new_keys) -> int:
    if isinstance(max_new_keys, bool) or not float(max_new_keys).is_integer() or max_new_keys < 1:
        raise ValueError(f"max_new_keys must be an integer >= 1, got {max_new_keys!r}")
    return int(max_new_keys)


# ---------------------------------------------------------------------------------------------
# subsampled Gaussian compositions (Opacus accountants)


@functools.lru_cache(maxsize=1024)
def _rdp_one_step(noise_multiplier: float, sample_rate: float, orders: tuple[float, ...]) -> np.ndarray:
    from opacus.accountants.analysis import rdp as rdp_analysis

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = np.asarray(rdp_analysis.compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier,
                                                  steps=1, orders=list(orders)), dtype=float)
    out.setflags(write=False)
    return out


def subsampled_gaussian_rdp(noise_multiplier: float, sample_rate: float, steps: int,
                            orders: Iterable[float] | None = None) -> np.ndarray:
    r"""RDP curve of ``steps`` Poisson-subsampled Gaussian steps at ``orders`` (Opacus, Mironov 2019).

    With ``sample_rate=1`` this is :math:`\alpha\,T/(2\sigma^2)`.  A :math:`\mu`-GDP release is
    the case ``noise_multiplier=1/mu, sample_rate=1, steps=1``.
    """
    noise_multiplier = _real("noise_multiplier", noise_multiplier)
    sample_rate = _check_sample_rate(sample_rate)
    steps = _check_steps(steps)
    orders = RDP_ORDERS if orders is None else tuple(float(a) for a in orders)
    if steps == 0:
        return np.zeros(len(orders))
    if noise_multiplier == 0:
        return np.full(len(orders), math.inf)
    if math.isinf(noise_multiplier):
        return np.zeros(len(orders))
    return steps * _rdp_one_step(noise_multiplier, sample_rate, orders)


def rdp_to_epsilon(rdp: np.ndarray, delta: float, orders: Iterable[float] | None = None) -> float:
    """Convert an RDP curve to epsilon at ``delta`` (Opacus's conversion, Balle et al. 2020, Thm. 21)."""
    from opacus.accountants.analysis import rdp as rdp_analysis

    delta = _check_delta(delta)
    orders = RDP_ORDERS if orders is None else tuple(float(a) for a in orders)
    rdp = np.asarray(rdp, dtype=float)
    if not np.isfinite(rdp).any():
        return math.inf
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps, _ = rdp_analysis.get_privacy_spent(orders=list(orders), rdp=rdp, delta=delta)
    return float(max(0.0, eps)) if not math.isnan(eps) else math.inf


def _rdp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    return rdp_to_epsilon(subsampled_gaussian_rdp(noise_multiplier, sample_rate, steps), delta)


@functools.lru_cache(maxsize=256)
def _prv_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                 eps_error: float) -> tuple[float, bool]:
    """Opacus's PRV upper bound; returns ``(epsilon, coarsened)``.

    Cached (a pure function of its arguments): the release recorded after a DP-SGD run asks for
    the epsilon of the noise multiplier that the calibration has just evaluated.

    The grid Opacus would build has ``2 L / mesh`` points (``L`` the safe domain size of Gopi et
    al., ``mesh = eps_error / sqrt(T log(12/delta_error) / 2)``).  For small noise multipliers it
    runs to billions of points (tens of GiB); the error target is then coarsened so that the grid
    stays below ``_PRV_MAX_POINTS``: the result is still an upper bound, only a looser one.
    """
    from opacus.accountants import PRVAccountant
    from opacus.accountants.analysis.prv import PoissonSubsampledGaussianPRV, compute_safe_domain_size

    delta_error = delta / 1000
    coarsened = False
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prv = PoissonSubsampledGaussianPRV(sample_rate, noise_multiplier)
        for _ in range(4):
            half_width = compute_safe_domain_size(prvs=[prv], max_self_compositions=[steps],
                                                  eps_error=eps_error, delta_error=delta_error)
            mesh = eps_error / math.sqrt(steps * math.log(12 / delta_error) / 2)
            points = 2 * half_width / mesh
            if not points > _PRV_MAX_POINTS:  # (a NaN size fails in Opacus below: RDP fallback)
                break
            eps_error *= 1.05 * points / _PRV_MAX_POINTS if math.isfinite(points) else 10.0
            coarsened = True
        else:
            raise ValueError("the PRV grid stays too large")
        acc = PRVAccountant()
        acc.history = [(noise_multiplier, sample_rate, steps)]
        eps = float(acc.get_epsilon(delta=delta, eps_error=eps_error, delta_error=delta_error))
    return eps, coarsened


def subsampled_gaussian_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "prv",
    *,
    eps_error: float | None = None,
) -> float:
    r"""Epsilon of ``steps`` Poisson-subsampled Gaussian steps (Opacus PRV or RDP accountant).

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation divided by the L2 sensitivity (clipping norm) of one step.
    sample_rate : float
        Poisson sampling probability :math:`q \in (0, 1]` of each row in each step.
    steps : int
        Number of steps :math:`T`.
    delta : float
        Target delta.
    accountant : {"prv", "rdp"}
        ``"prv"``: the upper bound of Opacus's PRV accountant (Gopi et al. 2021).
        ``"rdp"``: Opacus's RDP analysis over :data:`RDP_ORDERS` (a wider set of orders than
        Opacus's default, hence never looser than ``RDPAccountant().get_epsilon``).
    eps_error : float, optional
        PRV only: the accountant's error target; by default :math:`10^{-3}\max(1,\varepsilon_{RDP})`.
        Where the PRV grid would exceed about two million points (small noise multipliers), the
        target is coarsened and the smaller of the PRV and RDP bounds is returned; if the PRV
        computation fails, the RDP bound is returned with a warning.
    """
    noise_multiplier = _real("noise_multiplier", noise_multiplier)
    sample_rate = _check_sample_rate(sample_rate)
    steps = _check_steps(steps)
    delta = _check_delta(delta)
    accountant = _check_accountant(accountant)
    if steps == 0 or math.isinf(noise_multiplier):
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    rdp_eps = _rdp_epsilon(noise_multiplier, sample_rate, steps, delta)
    if accountant == "rdp":
        return rdp_eps
    if eps_error is None:
        eps_error = _PRV_REL_EPS_ERROR * max(1.0, rdp_eps if math.isfinite(rdp_eps) else 1.0)
    eps_error = _real("eps_error", eps_error, lo_open=True, allow_inf=False)
    try:
        eps, coarsened = _prv_epsilon(noise_multiplier, sample_rate, steps, delta, eps_error)
    except (ValueError, RuntimeError, FloatingPointError, OverflowError, MemoryError) as exc:
        warnings.warn(f"the PRV accountant failed ({exc}); using the RDP bound", RuntimeWarning,
                      stacklevel=2)
        return rdp_eps
    if coarsened or not math.isfinite(eps):
        return min(eps, rdp_eps) if not math.isnan(eps) else rdp_eps
    return eps


def calibrate_subsampled_noise(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "prv",
    rtol: float = 1e-3,
) -> float:
    """Smallest noise multiplier whose subsampled composition stays within (epsilon, delta).

    Root finding in log space on :func:`subsampled_gaussian_epsilon`: first with the (cheap) RDP
    accountant, whose multiplier brackets the PRV one from above, then with the PRV accountant.
    The returned multiplier always satisfies the target (it is checked) and is within ``rtol``
    (relative) of the smallest one that does.  ``epsilon=inf`` or ``steps=0`` give ``0.0``.
    """
    epsilon = _check_epsilon(epsilon)
    delta = _check_delta(delta)
    sample_rate = _check_sample_rate(sample_rate)
    steps = _check_steps(steps)
    accountant = _check_accountant(accountant)
    rtol = _real("rtol", rtol, lo_open=True, allow_inf=False)
    if math.isinf(epsilon) or steps == 0:
        return 0.0

    def rdp(s: float) -> float:
        return _rdp_epsilon(s, sample_rate, steps, delta)

    sigma = _calibrate(rdp, epsilon, 1.0, 2.0, rtol if accountant == "rdp" else min(rtol, 1e-2))
    if accountant == "rdp":
        return sigma

    def prv(s: float) -> float:
        return subsampled_gaussian_epsilon(s, sample_rate, steps, delta, "prv")

    return _calibrate(prv, epsilon, sigma, 1.1, rtol)


def _calibrate(eps_of: Callable[[float], float], target: float, start: float, factor: float,
               rtol: float) -> float:
    """Smallest sigma (within rtol) with eps_of(sigma) <= target; eps_of decreasing in sigma."""
    cache: dict[float, float] = {}

    def f(log_s: float) -> float:
        if log_s not in cache:
            cache[log_s] = eps_of(math.exp(log_s))
        e = cache[log_s]
        return min(math.log(e), 50.0) - math.log(target) if e > 0 else -50.0

    hi = math.log(start)
    while f(hi) > 0:
        hi += math.log(factor)
        if hi > math.log(1e4):
            raise ValueError(f"no noise multiplier below 1e4 reaches epsilon={target}")
    lo = hi - math.log(factor)
    while f(lo) <= 0:
        lo, hi = lo - math.log(factor), lo
        if lo < math.log(1e-6):
            return math.exp(hi)
    xtol = math.log1p(rtol) / 2
    root = optimize.brentq(f, lo, hi, xtol=xtol, rtol=4 * np.finfo(float).eps)
    best = min(hi, root + xtol)  # the root is within xtol: best <= true root * (1 + rtol)
    while f(best) > 0:  # step up until the target is met (the accountants are not exactly monotone)
        best += xtol / 4
    return float(math.exp(best))
