"""Accounting numbers checked against independent references.

References used here, written independently of ``skdpgen.privacy.accounting``:

* the privacy profile of the Gaussian mechanism integrated numerically from its privacy-loss
  distribution (mpmath quadrature at 40 digits);
* the Balle & Wang closed form evaluated with mpmath at 50 digits and inverted by plain bisection;
* Opacus's own accountants and RDP analysis called directly.
"""

from __future__ import annotations

import math
import warnings

import mpmath as mp
import numpy as np
import pytest
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.analysis import rdp as opacus_rdp

from skdpgen.privacy import (
    RDP_ORDERS,
    calibrate_gaussian,
    calibrate_subsampled_noise,
    compose_gdp,
    gdp_delta,
    gdp_epsilon,
    gdp_log_delta,
    gdp_mu,
    rdp_to_epsilon,
    sparse_histogram_delta,
    sparse_histogram_threshold,
    subsampled_gaussian_epsilon,
    subsampled_gaussian_rdp,
)

RTOL = 1e-6


def rel_err(a: float, b: float) -> float:
    return abs(float(a) - float(b)) / abs(float(b))


# ---------------------------------------------------------------------------------------------
# independent references


def delta_by_integration(mu: float, eps: float, dps: int = 40) -> mp.mpf:
    """delta(eps) = E_{x ~ N(mu, 1)} [max(0, 1 - exp(eps - L(x)))], L(x) = mu x - mu^2 / 2.

    The privacy-loss distribution of N(mu, 1) against N(0, 1); the integrand vanishes below
    x* = (eps + mu^2 / 2) / mu, where L(x*) = eps.
    """
    with mp.workdps(dps):
        mu, eps = mp.mpf(mu), mp.mpf(eps)
        x_star = (eps + mu**2 / 2) / mu

        def integrand(x):
            loss = mu * x - mu**2 / 2
            return mp.npdf(x, mu, 1) * (1 - mp.exp(eps - loss))

        return mp.quad(integrand, [x_star, x_star + 1, x_star + 4, x_star + 12, mp.inf])


def delta_closed_form(mu, eps, dps: int = 50) -> mp.mpf:
    with mp.workdps(dps):
        mu, eps = mp.mpf(mu), mp.mpf(eps)
        return mp.ncdf(-eps / mu + mu / 2) - mp.exp(eps) * mp.ncdf(-eps / mu - mu / 2)


def bisect(f, lo, hi, iters: int = 200):
    """Root of an increasing function by plain bisection (mpmath numbers)."""
    lo, hi = mp.mpf(lo), mp.mpf(hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def ref_epsilon(mu: float, delta: float) -> float:
    with mp.workdps(50):
        return float(bisect(lambda e: delta - delta_closed_form(mu, e), 0, 2000))


def ref_mu(eps: float, delta: float) -> float:
    with mp.workdps(50):
        return float(bisect(lambda m: delta_closed_form(m, eps) - delta, mp.mpf("1e-12"), 1000))


# ---------------------------------------------------------------------------------------------
# gdp_delta


@pytest.mark.parametrize(
    ("mu", "eps"),
    [(0.1, 0.0), (0.5, 0.1), (1.0, 1.0), (1.0, 4.377), (0.3, 1.6), (2.0, 2.0), (2.0, 12.0),
     (5.0, 30.0), (0.05, 0.3), (10.0, 60.0)],
)
def test_gdp_delta_matches_integrated_privacy_profile(mu, eps):
    ref = delta_by_integration(mu, eps)
    assert rel_err(gdp_delta(mu, eps), ref) < RTOL


def test_gdp_delta_small_delta_regime_from_integration():
    # pairs chosen where delta is about 1e-10 and 1e-20
    for mu, delta in [(1.0, 1e-10), (0.2, 1e-10), (3.0, 1e-10), (1.0, 1e-20)]:
        eps = ref_epsilon(mu, delta)
        ref = delta_by_integration(mu, eps)
        assert rel_err(ref, delta) < 1e-9  # the two references agree
        assert rel_err(gdp_delta(mu, eps), ref) < RTOL


@pytest.mark.parametrize("mu", [1e-8, 1e-6, 1e-4, 1e-2, 0.3, 1.0, 4.0, 20.0, 100.0])
@pytest.mark.parametrize("eps", [0.0, 1e-8, 1e-6, 1e-3, 0.1, 1.0, 5.0, 25.0, 200.0, 3000.0])
def test_gdp_log_delta_against_high_precision(mu, eps):
    with mp.workdps(60):
        ref = delta_closed_form(mu, eps, dps=60)
        if ref <= 0:
            pytest.skip("delta is zero at 60 digits")
        log_ref = float(mp.log(ref))
    got = gdp_log_delta(mu, eps)
    # the absolute error of the log is the relative error of delta; a log of -1e12 is itself
    # only known to its last bits, hence the relative term
    assert abs(got - log_ref) < 1e-10 + 1e-14 * abs(log_ref)
    if log_ref > -700:
        assert rel_err(gdp_delta(mu, eps), math.exp(log_ref)) < 1e-9


def test_gdp_log_delta_where_delta_underflows():
    # delta ~ 1e-400 and 1e-2000: not representable, the log stays accurate
    for mu, eps in [(1.0, 43.0), (1.0, 96.0), (0.5, 30.0)]:
        log_ref = float(mp.log(delta_closed_form(mu, eps, dps=80)))
        assert log_ref < -745
        assert gdp_delta(mu, eps) == 0.0
        assert rel_err(gdp_log_delta(mu, eps), log_ref) < 1e-12


def test_gdp_delta_limits_and_monotonicity():
    assert gdp_delta(0.0, 1.0) == 0.0
    assert gdp_delta(1.0, math.inf) == 0.0
    assert gdp_delta(math.inf, 1.0) == 1.0
    eps = np.linspace(0, 10, 50)
    d = [gdp_delta(1.5, e) for e in eps]
    assert all(a >= b for a, b in zip(d, d[1:], strict=False))
    mus = np.linspace(0.01, 5, 50)
    d = [gdp_delta(m, 1.0) for m in mus]
    assert all(a <= b for a, b in zip(d, d[1:], strict=False))


# ---------------------------------------------------------------------------------------------
# gdp_epsilon / gdp_mu / calibrate_gaussian


@pytest.mark.parametrize("mu", [0.05, 0.5, 1.0, 2.0, 8.0])
@pytest.mark.parametrize("delta", [1e-3, 1e-5, 1e-10])
def test_gdp_epsilon_against_bisection(mu, delta):
    got = gdp_epsilon(mu, delta)
    assert rel_err(got, ref_epsilon(mu, delta)) < RTOL
    assert gdp_delta(mu, got) <= delta  # never optimistic


@pytest.mark.parametrize("eps", [0.05, 0.5, 1.0, 3.0, 10.0])
@pytest.mark.parametrize("delta", [1e-3, 1e-5, 1e-10])
def test_gdp_mu_against_bisection(eps, delta):
    got = gdp_mu(eps, delta)
    assert rel_err(got, ref_mu(eps, delta)) < RTOL
    assert gdp_delta(got, eps) <= delta  # never optimistic
    assert rel_err(float(delta_closed_form(got, eps)), delta) < RTOL


def test_gdp_epsilon_zero_when_delta_is_large():
    # mu-GDP is (0, delta)-DP when delta >= delta(0) = 2 Phi(mu/2) - 1
    d0 = float(2 * mp.ncdf(0.25) - 1)
    assert gdp_epsilon(0.5, d0 * 1.01) == 0.0
    assert gdp_epsilon(0.5, d0 * 0.99) > 0.0


@pytest.mark.parametrize(("sens", "eps", "delta", "k"),
                         [(1.0, 1.0, 1e-5, 1), (0.02, 0.5, 1e-6, 1), (2.0, 3.0, 1e-8, 7)])
def test_calibrate_gaussian_delta_equals_target(sens, eps, delta, k):
    sigma = calibrate_gaussian(sens, eps, delta, n_releases=k)
    mu = sens * math.sqrt(k) / sigma
    assert rel_err(float(delta_closed_form(mu, eps)), delta) < RTOL
    assert rel_err(float(delta_by_integration(mu, eps)), delta) < RTOL
    assert rel_err(sigma, sens * math.sqrt(k) / ref_mu(eps, delta)) < RTOL


def test_balle_wang_analytic_gaussian_known_value():
    # eps=1, delta=1e-5, sensitivity 1: the analytic Gaussian mechanism needs sigma ~ 3.73
    # (Balle & Wang 2018, Fig. 1), much less than the classical sqrt(2 ln(1.25/delta))/eps ~ 4.84.
    sigma = calibrate_gaussian(1.0, 1.0, 1e-5)
    brute = 1.0 / ref_mu(1.0, 1e-5)
    assert rel_err(sigma, brute) < RTOL
    assert abs(brute - 3.73) < 0.01
    assert sigma < math.sqrt(2 * math.log(1.25 / 1e-5))


def test_compose_gdp():
    assert compose_gdp([0.3, 0.4]) == pytest.approx(0.5, rel=1e-15)
    assert compose_gdp([1.0] * 9) == pytest.approx(3.0, rel=1e-15)
    assert compose_gdp([]) == 0.0
    assert math.isinf(compose_gdp([1.0, math.inf]))
    with pytest.raises(ValueError, match="mu"):
        compose_gdp([1.0, -0.5])
    with pytest.raises(ValueError, match="NaN"):
        compose_gdp([float("nan")])


# ---------------------------------------------------------------------------------------------
# edge cases


def test_infinite_epsilon_means_no_noise():
    assert math.isinf(gdp_mu(math.inf, 1e-5))
    assert calibrate_gaussian(1.0, math.inf, 1e-5) == 0.0
    assert calibrate_subsampled_noise(math.inf, 1e-5, 0.01, 100) == 0.0
    assert math.isinf(gdp_epsilon(math.inf, 1e-5))
    assert gdp_epsilon(0.0, 1e-5) == 0.0


@pytest.mark.parametrize("eps", [0.0, -1.0, float("nan"), -math.inf])
def test_bad_epsilon_raises(eps):
    with pytest.raises(ValueError, match="epsilon"):
        gdp_mu(eps, 1e-5)
    with pytest.raises(ValueError, match="epsilon"):
        calibrate_gaussian(1.0, eps, 1e-5)
    with pytest.raises(ValueError, match="epsilon"):
        calibrate_subsampled_noise(eps, 1e-5, 0.01, 100)


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, 1.5, float("nan"), math.inf, "abc"])
def test_bad_delta_raises(delta):
    for call in (lambda: gdp_mu(1.0, delta), lambda: gdp_epsilon(1.0, delta),
                 lambda: calibrate_gaussian(1.0, 1.0, delta),
                 lambda: sparse_histogram_threshold(1.0, delta),
                 lambda: subsampled_gaussian_epsilon(1.0, 0.01, 10, delta),
                 lambda: calibrate_subsampled_noise(1.0, delta, 0.01, 10)):
        with pytest.raises(ValueError, match="delta"):
            call()


def test_other_bad_arguments_raise():
    with pytest.raises(ValueError, match="mu"):
        gdp_delta(-1.0, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        gdp_delta(float("nan"), 1.0)
    with pytest.raises(ValueError, match="epsilon"):
        gdp_delta(1.0, float("nan"))
    with pytest.raises(ValueError, match="mu"):
        gdp_epsilon(float("nan"), 1e-5)
    with pytest.raises(ValueError, match="sensitivity"):
        calibrate_gaussian(-1.0, 1.0, 1e-5)
    with pytest.raises(ValueError, match="n_releases"):
        calibrate_gaussian(1.0, 1.0, 1e-5, n_releases=0)
    with pytest.raises(ValueError, match="sample_rate"):
        subsampled_gaussian_epsilon(1.0, 0.0, 10, 1e-5)
    with pytest.raises(ValueError, match="sample_rate"):
        subsampled_gaussian_epsilon(1.0, 1.5, 10, 1e-5)
    with pytest.raises(ValueError, match="steps"):
        subsampled_gaussian_epsilon(1.0, 0.1, -1, 1e-5)
    with pytest.raises(ValueError, match="steps"):
        subsampled_gaussian_epsilon(1.0, 0.1, 2.5, 1e-5)
    with pytest.raises(ValueError, match="noise_multiplier"):
        subsampled_gaussian_epsilon(-1.0, 0.1, 10, 1e-5)
    with pytest.raises(ValueError, match="accountant"):
        subsampled_gaussian_epsilon(0.0, 0.1, 10, 1e-5, accountant="moments")
    with pytest.raises(ValueError, match="max_new_keys"):
        sparse_histogram_threshold(1.0, 1e-5, max_new_keys=0)


# ---------------------------------------------------------------------------------------------
# sparse histograms


@pytest.mark.parametrize("noise_std", [0.3, 1.0, 7.5])
@pytest.mark.parametrize("delta", [0.1, 1e-5, 1e-10, 1e-15])
@pytest.mark.parametrize("keys", [1, 4])
def test_sparse_histogram_threshold_and_delta_are_inverse(noise_std, delta, keys):
    tau = sparse_histogram_threshold(noise_std, delta, keys)
    assert tau > 1.0 or delta / keys >= 0.5
    assert rel_err(sparse_histogram_delta(noise_std, tau, keys), delta) < 1e-9
    assert rel_err(sparse_histogram_threshold(noise_std, sparse_histogram_delta(noise_std, tau, keys),
                                              keys), tau) < 1e-9
    # independent: a key with count 1 crosses tau with probability Phi((1 - tau) / s)
    with mp.workdps(30):
        assert rel_err(keys * mp.ncdf((1 - tau) / noise_std), delta) < 1e-9


def test_sparse_histogram_delta_without_noise():
    assert sparse_histogram_delta(0.0, 1.5) == 0.0
    assert sparse_histogram_delta(0.0, 1.0) == 1.0


# ---------------------------------------------------------------------------------------------
# subsampled Gaussian compositions


def _opacus_prv(sigma, q, steps, delta, eps_error):
    acc = PRVAccountant()
    acc.history = [(sigma, q, steps)]
    return acc.get_epsilon(delta=delta, eps_error=eps_error)


@pytest.mark.parametrize(("sigma", "q", "steps", "delta"),
                         [(1.0, 0.05, 100, 1e-5), (2.0, 0.1, 50, 1e-6)])
def test_subsampled_epsilon_matches_opacus_accountants(sigma, q, steps, delta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # PRV: the same computation as Opacus's accountant at the same error target
        got = subsampled_gaussian_epsilon(sigma, q, steps, delta, "prv", eps_error=0.01)
        assert rel_err(got, _opacus_prv(sigma, q, steps, delta, 0.01)) < 1e-9
        # RDP: Opacus's accountant over the same orders, and never looser than its defaults
        rdp = RDPAccountant()
        rdp.history = [(sigma, q, steps)]
        got_rdp = subsampled_gaussian_epsilon(sigma, q, steps, delta, "rdp")
        assert rel_err(got_rdp, rdp.get_epsilon(delta=delta, alphas=list(RDP_ORDERS))) < 1e-12
        assert got_rdp <= rdp.get_epsilon(delta=delta) * (1 + 1e-12)
    # PRV is the tighter accountant here, and the default error target keeps it close
    default = subsampled_gaussian_epsilon(sigma, q, steps, delta)
    assert default < got_rdp
    assert abs(default - got) < 0.02


@pytest.mark.parametrize(("sigma", "steps"), [(1.0, 1), (3.0, 10), (20.0, 4)])
def test_full_batch_rdp_is_the_gaussian_closed_form(sigma, steps):
    orders = np.array(RDP_ORDERS)
    closed = orders * steps / (2 * sigma**2)  # RDP of the Gaussian mechanism (Mironov 2017)
    np.testing.assert_allclose(subsampled_gaussian_rdp(sigma, 1.0, steps), closed, rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, _ = opacus_rdp.get_privacy_spent(orders=list(orders), rdp=closed, delta=1e-5)
    got = subsampled_gaussian_epsilon(sigma, 1.0, steps, 1e-5, "rdp")
    assert rel_err(got, ref) < 1e-12
    assert rel_err(rdp_to_epsilon(closed, 1e-5), ref) < 1e-12
    # full-batch steps are exactly sqrt(T)/sigma-GDP: RDP is an upper bound, PRV is tight
    exact = gdp_epsilon(math.sqrt(steps) / sigma, 1e-5)
    assert got >= exact
    prv = subsampled_gaussian_epsilon(sigma, 1.0, steps, 1e-5, "prv", eps_error=1e-3)
    assert exact - 1e-3 <= prv <= exact + 3e-3


def test_subsampled_epsilon_trivial_cases():
    assert subsampled_gaussian_epsilon(1.0, 0.1, 0, 1e-5) == 0.0
    assert math.isinf(subsampled_gaussian_epsilon(0.0, 0.1, 10, 1e-5))
    assert calibrate_subsampled_noise(1.0, 1e-5, 0.1, 0) == 0.0


def test_small_noise_multiplier_does_not_exhaust_memory(monkeypatch):
    # Opacus's PRV grid for sigma=0.1, q=0.01, T=1000 has ~2e9 points (tens of GiB): the
    # accountant coarsens its error target and returns the tighter of PRV and RDP (a smaller
    # cap than the default keeps this test fast; the logic is the same)
    from skdpgen.privacy import accounting

    monkeypatch.setattr(accounting, "_PRV_MAX_POINTS", 200_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rdp = subsampled_gaussian_epsilon(0.1, 0.01, 1000, 1e-5, "rdp")
        prv = subsampled_gaussian_epsilon(0.1, 0.01, 1000, 1e-5, "prv")
    assert math.isfinite(prv) and prv <= rdp


@pytest.mark.parametrize(("accountant", "rtol"), [("rdp", 1e-3), ("prv", 1e-3)])
def test_calibrate_subsampled_noise_meets_target_tightly(accountant, rtol):
    eps, delta, q, steps = 2.0, 1e-5, 0.05, 100
    sigma = calibrate_subsampled_noise(eps, delta, q, steps, accountant, rtol=rtol)
    assert subsampled_gaussian_epsilon(sigma, q, steps, delta, accountant) <= eps
    assert subsampled_gaussian_epsilon(0.99 * sigma, q, steps, delta, accountant) > eps
    if accountant == "rdp":
        # independent check of the target with Opacus's RDP accountant over the same orders
        acc = RDPAccountant()
        acc.history = [(sigma, q, steps)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert acc.get_epsilon(delta=delta, alphas=list(RDP_ORDERS)) <= eps


@pytest.mark.parametrize("epsilon", [1.35e5, 1.5e5, 2.5e5, 4e5, 5e5])
def test_gdp_mu_near_its_cap_still_meets_delta(epsilon):
    """Between the last doubling (512) and the cap (1000) the root is searched, not assumed."""
    from skdpgen.privacy.accounting import gdp_delta, gdp_mu

    mu = gdp_mu(epsilon, 1e-5)
    assert mu < 1000.0
    assert gdp_delta(mu, epsilon) <= 1e-5
    assert gdp_delta(mu * (1 + 1e-6), epsilon) > 1e-5 * 0.999  # and it is the largest such mu
