r"""Empirical privacy audit of DPMMDSynthesizer's one release: the noise is really there.

Two neighbouring tables under add/remove-one-row: ``D`` (200 rows) and ``D' = D + canary``.
``DPMMDSynthesizer`` releases :math:`\tilde v = v(D) + N(0, \sigma^2 I)` with
:math:`v(D) = [\sum_i \phi(x_i),\ w\, n]` and claims :math:`\mu`-GDP with
:math:`\mu = \Delta / \sigma`, :math:`\Delta = \sqrt{1 + w^2}`.  The canary moves the exact vector
by :math:`d = [\phi(c), w]`, so the Neyman-Pearson optimal test between the two fits projects the
release onto :math:`d / \|d\|`:

.. math::

    T = \langle \tilde v - v(D),\ d / \|d\| \rangle / \sigma
    \sim N(0, 1) \text{ under } D, \qquad N(\|d\| / \sigma, 1) \text{ under } D'.

The separation :math:`\|d\|/\sigma = \mu\,\|d\|/\Delta` equals the claimed :math:`\mu` up to
:math:`\|\phi(c)\| \le 1`; the canary sits at the centre of every column, where the Hermite
features have norm :math:`1 - 10^{-5}`, so the audit is tight, and the empirical separation must
MATCH the claim, not only stay below it.  The release is read back from public attributes only
(``embedding_``, ``n_samples_estimate_``, ``privacy_report_``): see :func:`_released_vector`.

Trials use ``n_iter=0`` (no generator training; the release happens anyway).  Trial ``i`` fits
both tables with ``random_state=SEED0 + i``: common random numbers, which leave each table's
distribution of :math:`T` untouched (every group-level statistic below uses iid draws of one
table only) but make the estimate of the separation far sharper.  A black-box estimate from
disjoint seeds is checked as well.  The empirical epsilon lower bound uses threshold tests
chosen on the first half of the trials and Clopper-Pearson bounds on the second half.

Negative controls patch the noise away (or down to 1% or 50%) and show that the same checks fail.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import skdpgen.mmd.synthesizer as mmd_synthesizer
from skdpgen.mmd import DPMMDSynthesizer
from skdpgen.privacy import gdp_delta, gdp_epsilon, gdp_mu

EPSILON, DELTA = 1.0, 1e-5
N_ROWS = 200
SCHEMA = {
    "a": {"type": "continuous", "bounds": [0.0, 10.0]},
    "b": {"type": "continuous", "bounds": [-5.0, 5.0]},
    "c": {"type": "continuous", "bounds": [100.0, 300.0]},
}
# the centre of every column: u = 0 for the Hermite features, where ||phi|| is largest
CANARY = pd.DataFrame({"a": [5.0], "b": [0.0], "c": [200.0]})
SEED0 = 10_000
N_TRIALS = 1000  # per table: 2000 fits of ~8 ms
ALPHA_MU = 1e-4  # two-sided level of the chi-square interval for the separation
ALPHA_EPS = 0.05  # level of the whole epsilon lower bound (Bonferroni over thresholds and sides)
N_THRESHOLDS = 3


def _table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.uniform(0.0, 10.0, N_ROWS), "b": rng.normal(0.0, 2.0, N_ROWS).clip(-5, 5),
                         "c": rng.uniform(100.0, 300.0, N_ROWS)})


def _synthesizer() -> DPMMDSynthesizer:
    # length_scale=1 (rho = sqrt(2) - 1): order 8 keeps 1 - 2e-5 of phi's norm at the centre
    return DPMMDSynthesizer(features="hermite", hermite_order=8, length_scale=1.0, n_iter=0, hidden=(4,),
                            latent_dim=2, batch_size=8, epsilon=EPSILON, delta=DELTA, schema=SCHEMA,
                            device="cpu")


def _embedding_release(syn: DPMMDSynthesizer) -> dict:
    (release,) = [r for r in syn.privacy_report_["releases"] if r["name"] == "DPMMDSynthesizer.embedding"]
    return release


def _released_vector(syn: DPMMDSynthesizer) -> np.ndarray:
    r"""The noisy release :math:`[\tilde S,\ w \tilde n]` rebuilt from public attributes.

    With one class, ``n_samples_estimate_`` is the noisy count :math:`\tilde n` (unless clamped
    at 1, excluded below) and ``embedding_`` is :math:`\tilde S / \tilde n`.  The count weight
    :math:`w` is the module's constant, not read back from the stated sensitivity, so that an
    under-stated sensitivity shows up as a separation above the claim.
    """
    assert syn.embedding_.shape[0] == 1, "one class only"
    n_hat = float(syn.n_samples_estimate_)
    assert n_hat > 1.0, "the noisy count was clamped: the release cannot be rebuilt"
    w = mmd_synthesizer._COUNT_WEIGHT
    sums = syn.embedding_.detach().cpu().double().numpy().ravel() * n_hat
    return np.append(sums, w * n_hat)


def _features(syn: DPMMDSynthesizer, rows: pd.DataFrame) -> np.ndarray:
    with torch.no_grad():
        return syn.feature_map_(syn.encoder_.to_tensor(rows)).double().numpy()


def _run_trials(n_trials: int, seed0: int = SEED0) -> dict:
    """Fit D and D' with random_state seed0 + i, i < n_trials; the statistic T of every fit."""
    D = _table()
    D_prime = pd.concat([D, CANARY], ignore_index=True)
    syn = _synthesizer().fit(D)
    release = _embedding_release(syn)
    sensitivity, sigma = release["sensitivity"], release["noise_std"]
    w = mmd_synthesizer._COUNT_WEIGHT
    exact_D = np.append(_features(syn, D).sum(axis=0), w * len(D))  # v(D), no noise
    d = np.append(_features(syn, CANARY)[0], w)  # v(D') - v(D)
    direction = d / np.linalg.norm(d)
    T = np.empty((2, n_trials))
    for j, table in enumerate((D, D_prime)):
        for i in range(n_trials):
            syn.set_params(random_state=seed0 + i).fit(table)
            assert _embedding_release(syn)["noise_std"] == sigma
            T[j, i] = (_released_vector(syn) - exact_D) @ direction / sigma
    return {"T0": T[0], "T1": T[1], "sigma": sigma, "sensitivity": sensitivity,
            "mu_claimed": sensitivity / sigma, "mu_report": syn.privacy_report_["mu"],
            "mu_predicted": float(np.linalg.norm(d)) / sigma, "phi_norm": float(np.linalg.norm(d[:-1]))}


# ------------------------------------------------------------------------------- statistics


def _separation(T0: np.ndarray, T1: np.ndarray) -> float:
    """GDP separation estimate: difference of the means over the pooled standard deviation."""
    pooled = math.sqrt((T0.var(ddof=1) + T1.var(ddof=1)) / 2.0)
    return math.inf if pooled == 0 else float((T1.mean() - T0.mean()) / pooled)


def _chi2_factors(n: int, alpha: float = ALPHA_MU) -> tuple[float, float]:
    """(low, high) with P(low <= sigma / s <= high) = 1 - alpha for the sample std s of n normals."""
    # with common random numbers both tables share their noise draws (T1 = T0 + shift, checked in
    # test_canary_moves_the_release_by_its_features_only), so the pooled variance has n - 1 degrees
    # of freedom, not 2 (n - 1)
    df = n - 1
    lo, hi = stats.chi2.ppf([alpha / 2, 1 - alpha / 2], df)
    return math.sqrt(df / hi), math.sqrt(df / lo)


def _cp_upper(k: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound (level 1 - alpha) of a rate with k hits in n."""
    k = np.asarray(k)
    out = np.ones(k.shape)
    inner = k < n
    out[inner] = stats.beta.ppf(1.0 - alpha, k[inner] + 1, n - k[inner])
    return out


def _eps_bounds(T0: np.ndarray, T1: np.ndarray, thresholds: np.ndarray, alpha: float) -> np.ndarray:
    r"""Epsilon lower bounds of the tests "say D' when T > t", each with its rates bounded at alpha.

    (epsilon, delta)-DP forces :math:`1 - \delta - FNR \le e^\varepsilon FPR` and
    :math:`1 - \delta - FPR \le e^\varepsilon FNR`; both are used, with upper confidence bounds
    of FPR (from D's trials) and FNR (from D''s trials).
    """
    t = np.asarray(thresholds)[:, None]
    fpr = _cp_upper((T0[None, :] > t).sum(axis=1), len(T0), alpha)
    fnr = _cp_upper((T1[None, :] <= t).sum(axis=1), len(T1), alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(np.clip(1.0 - DELTA - fnr, 0.0, None) / fpr)
        b = np.log(np.clip(1.0 - DELTA - fpr, 0.0, None) / fnr)
    return np.fmax(a, b)


def _empirical_epsilon(T0: np.ndarray, T1: np.ndarray) -> float:
    """Epsilon lower bound at level 1 - ALPHA_EPS: thresholds from the first half, rates from the second."""
    half = len(T0) // 2
    pooled = np.unique(np.concatenate([T0[:half], T1[:half]]))
    candidates = (pooled[1:] + pooled[:-1]) / 2.0 if len(pooled) > 1 else pooled
    # score on the selection half with the same confidence level, keep the N_THRESHOLDS best
    alpha = ALPHA_EPS / (2 * N_THRESHOLDS)
    score = _eps_bounds(T0[:half], T1[:half], candidates, alpha)
    chosen = candidates[np.argsort(-score, kind="stable")[:N_THRESHOLDS]]
    bounds = _eps_bounds(T0[half:], T1[half:], chosen, alpha)
    return max(0.0, float(np.max(bounds)))


def _audit(res: dict) -> dict:
    T0, T1 = res["T0"], res["T1"]
    n = len(T0)
    half = n // 2
    lo, hi = _chi2_factors(n)
    # black-box estimate from disjoint seeds (no common random numbers): D's first half vs D''s second
    mu_indep = _separation(T0[:half], T1[half:])
    se_indep = math.sqrt(2.0 / half + mu_indep**2 / (4.0 * half)) if math.isfinite(mu_indep) else 0.0
    return {**res, "mu_hat": _separation(T0, T1), "mu_hat_low": res["mu_predicted"] * lo,
            "mu_hat_high": res["mu_predicted"] * hi, "mu_tolerance": hi - 1.0, "mu_indep": mu_indep,
            "se_indep": se_indep, "eps_lb": _empirical_epsilon(T0, T1)}


def _violated_claims(a: dict) -> list[str]:
    """The privacy claims the audit refutes (empty when the release is as noisy as claimed)."""
    out = []
    if not a["mu_hat"] <= a["mu_claimed"] * (1.0 + a["mu_tolerance"]):
        out.append("separation above the claimed mu")
    if not a["mu_indep"] <= a["mu_claimed"] + 4.0 * a["se_indep"]:
        out.append("black-box separation above the claimed mu")
    if not a["eps_lb"] <= EPSILON:
        out.append("empirical epsilon above the claimed epsilon")
    return out


def _summary(a: dict) -> str:
    return (f"mu claimed {a['mu_claimed']:.4f}, predicted {a['mu_predicted']:.4f}, mu_hat {a['mu_hat']:.4f} "
            f"(allowed [{a['mu_hat_low']:.4f}, {a['mu_hat_high']:.4f}]), black-box mu_hat "
            f"{a['mu_indep']:.4f} +- {a['se_indep']:.4f}, eps lower bound {a['eps_lb']:.3f} "
            f"(claimed {EPSILON})")


# ------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def audit(_one_torch_thread) -> dict:
    return _audit(_run_trials(N_TRIALS))


def test_claimed_calibration(audit):
    # the fit is one Gaussian release at the full budget (declared schema, no y)
    mu = gdp_mu(EPSILON, DELTA)
    assert audit["mu_claimed"] == pytest.approx(mu, rel=1e-12)
    assert audit["mu_report"] == pytest.approx(mu, rel=1e-12)
    # the stated sensitivity covers ||[phi(x), w]|| <= sqrt(1 + w^2) (||phi|| <= 1, w the count weight)
    assert audit["sensitivity"] >= math.sqrt(1.0 + mmd_synthesizer._COUNT_WEIGHT**2) * (1 - 1e-12)
    assert gdp_delta(audit["mu_claimed"], EPSILON) <= DELTA * (1 + 1e-9)
    assert gdp_epsilon(audit["mu_claimed"], DELTA) <= EPSILON * (1 + 1e-9)
    # the canary is (nearly) a worst case: the audit measures the claimed mu, not a fraction of it
    assert 0.9999 < audit["phi_norm"] <= 1.0 + 1e-6
    assert audit["mu_claimed"] * 0.9999 < audit["mu_predicted"] <= audit["mu_claimed"] * (1 + 1e-6)


def test_canary_moves_the_release_by_its_features_only(audit):
    # common random numbers: the noise is drawn from random_state alone, so D' - D is exactly d
    assert np.allclose(audit["T1"] - audit["T0"], audit["mu_predicted"], rtol=0, atol=1e-4)


def test_noise_along_the_canary_is_the_claimed_gaussian(audit):
    T0 = audit["T0"]
    n = len(T0)
    assert abs(T0.mean()) < 4.5 / math.sqrt(n)
    lo, hi = _chi2_factors(n)
    assert lo <= 1.0 / T0.std(ddof=1) <= hi, T0.std(ddof=1)
    assert stats.kstest(T0, "norm").pvalue > 1e-4


def test_empirical_separation_matches_the_claim(audit):
    msg = _summary(audit)
    assert _violated_claims(audit) == [], msg
    # matches: within the exact chi-square interval around the predicted separation
    assert audit["mu_hat_low"] <= audit["mu_hat"] <= audit["mu_hat_high"], msg
    assert audit["mu_tolerance"] < 0.15
    # power: the noise is not over-stated either
    assert audit["mu_hat"] >= 0.5 * audit["mu_claimed"], msg
    assert audit["mu_indep"] >= audit["mu_predicted"] - 4.0 * audit["se_indep"], msg
    assert audit["eps_lb"] <= EPSILON, msg


def _patched_noise(monkeypatch, factor: float) -> None:
    real = mmd_synthesizer.gaussian_mechanism

    def scaled(value, noise_std, rng):
        return real(value, noise_std * factor, rng)

    monkeypatch.setattr(mmd_synthesizer, "gaussian_mechanism", scaled)


@pytest.mark.parametrize("factor", [0.0, 0.01])
def test_negative_control_without_noise_fails_the_audit(monkeypatch, factor):
    _patched_noise(monkeypatch, factor)
    a = _audit(_run_trials(200, seed0=SEED0 + 50_000))
    msg = _summary(a)
    assert a["mu_hat"] > 50 * a["mu_claimed"], msg
    assert a["eps_lb"] > 2.5, msg  # the most 100 + 100 trials can show at this level is about 3
    assert set(_violated_claims(a)) == {"separation above the claimed mu",
                                        "black-box separation above the claimed mu",
                                        "empirical epsilon above the claimed epsilon"}, msg


def test_negative_control_half_the_noise_fails_the_audit(monkeypatch):
    # a factor-2 under-noising bug (true mu = 2 x claimed, epsilon about 2.15): too subtle for the
    # epsilon lower bound with a few hundred trials, caught by the separation estimate
    _patched_noise(monkeypatch, 0.5)
    a = _audit(_run_trials(300, seed0=SEED0 + 90_000))
    msg = _summary(a)
    assert a["mu_hat"] == pytest.approx(2.0 * a["mu_predicted"], rel=0.15), msg
    assert "separation above the claimed mu" in _violated_claims(a), msg
