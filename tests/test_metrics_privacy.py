"""Privacy metrics: Clopper-Pearson, the empirical epsilon lower bound, the audit drivers, DCR."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from skdpgen.metrics import (
    audit_mechanism,
    audit_synthesizer,
    clopper_pearson,
    distance_to_closest_record,
    empirical_epsilon,
)
from skdpgen.privacy import calibrate_gaussian, gaussian_mechanism

DELTA = 1e-5
SIGMA = calibrate_gaussian(1.0, 1.0, DELTA)  # sensitivity 1, (1, 1e-5)-DP


def gaussian(v, rng):
    return gaussian_mechanism(v, SIGMA, rng)


def no_noise(v, rng):
    """Test double: the Gaussian release with its noise deliberately removed."""
    return gaussian_mechanism(v, 0.0, rng)


def test_clopper_pearson_definition():
    n, alpha = 50, 0.05
    k = np.arange(n + 1)
    lo, hi = clopper_pearson(k, n, alpha, "lower"), clopper_pearson(k, n, alpha, "upper")
    assert lo[0] == 0 and hi[-1] == 1 and np.all(lo <= k / n) and np.all(hi >= k / n)
    # P[Bin(n, lo) >= k] = alpha and P[Bin(n, hi) <= k] = alpha at the bounds
    assert np.allclose(binom.sf(k[1:] - 1, n, lo[1:]), alpha)
    assert np.allclose(binom.cdf(k[:-1], n, hi[:-1]), alpha)
    with pytest.raises(ValueError):
        clopper_pearson(k, n, alpha, "both")


def test_gaussian_mechanism_audit_has_power_and_stays_below_claim():
    res = audit_mechanism(gaussian, [1.0], [0.0], n_trials=200_000, delta=DELTA, claimed_epsilon=1.0)
    assert 0.25 < res.epsilon_lower_bound < 1.0
    assert res.consistent
    d = res.details
    assert d["n_with"] == d["n_without"] == 100_000  # evaluated on the held-out halves
    assert 0 <= d["fpr_upper"] < 1 and 0 < d["tpr_lower"] <= 1


def test_audit_without_noise_reports_far_above_claim():
    res = audit_mechanism(no_noise, [1.0], [0.0], n_trials=2000, delta=DELTA, claimed_epsilon=1.0)
    assert res.epsilon_lower_bound > 4.0
    assert res.consistent is False


@pytest.mark.parametrize("seed", range(8))
def test_bound_never_exceeds_claimed_epsilon(seed):
    res = audit_mechanism(gaussian, np.array([0.6, 0.8]), np.zeros(2), n_trials=50_000, delta=DELTA,
                          claimed_epsilon=1.0, random_state=seed)
    assert res.epsilon_lower_bound <= 1.0


def test_split_is_honest_on_identical_distributions():
    # no canary effect at all: selection on one half must not produce a positive bound on the other
    rng = np.random.default_rng(0)
    bounds = [empirical_epsilon(rng.normal(size=2000), rng.normal(size=2000), 0.0, random_state=s)
              for s in range(20)]
    assert np.mean(np.array(bounds) > 0) <= 0.1


def test_bonferroni_grid_and_errors():
    rng = np.random.default_rng(1)
    s1, s0 = rng.normal(3.0, 1, 5000), rng.normal(0.0, 1, 5000)
    eps, d = empirical_epsilon(s1, s0, DELTA, method="bonferroni", thresholds=[1.0, 1.5, 2.0],
                               return_details=True)
    assert eps > 1.0 and d["n_thresholds"] == 3 and d["threshold"] in (1.0, 1.5, 2.0)
    with pytest.raises(ValueError, match="fixed grid"):
        empirical_epsilon(s1, s0, DELTA, method="bonferroni")
    with pytest.raises(ValueError, match="method"):
        empirical_epsilon(s1, s0, DELTA, method="best")
    with pytest.raises(ValueError, match="finite"):
        empirical_epsilon([np.nan, 1.0], s0, DELTA)
    with pytest.raises(ValueError, match="confidence"):
        empirical_epsilon(s1, s0, DELTA, confidence=1.0)


def test_more_confidence_gives_a_lower_bound():
    rng = np.random.default_rng(2)
    s1, s0 = rng.normal(1.0, 1, 20_000), rng.normal(0.0, 1, 20_000)
    assert empirical_epsilon(s1, s0, DELTA, 0.99) <= empirical_epsilon(s1, s0, DELTA, 0.9)


def test_audit_synthesizer_driver_calls_fit_and_score():
    calls = []

    def fit_and_score(dataset, seed):
        calls.append((dataset, seed))
        rng = np.random.default_rng(seed)
        return float(sum(dataset) + rng.normal(0, SIGMA))  # a Gaussian "fit" of the sum

    res = audit_synthesizer(fit_and_score, [0.0, 1.0], [0.0], n_trials=300, delta=DELTA, claimed_epsilon=1.0)
    assert len(calls) == 600 and len({s for _, s in calls}) == 600
    assert 0 <= res.epsilon_lower_bound < 1.0
    with pytest.raises(ValueError, match="n_trials"):
        audit_synthesizer(fit_and_score, [1.0], [0.0], n_trials=2, delta=DELTA)


def test_distance_to_closest_record_detects_copies():
    rng = np.random.default_rng(3)
    schema = {"x": {"type": "continuous", "bounds": [-5, 5]},
              "c": {"type": "categorical", "categories": ["a", "b", "c"]}}

    def draw(n):
        return pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(list("abc"), size=n)})

    train, holdout, fresh = draw(800), draw(800), draw(800)
    copies = train.sample(800, replace=True, random_state=0)
    d_fresh = distance_to_closest_record(fresh, train, holdout, schema)
    d_copy = distance_to_closest_record(copies, train, holdout, schema)
    assert 0.4 < d_fresh["share_closer_to_train"] < 0.6 and d_fresh["exact_copies_train"] == 0
    assert d_copy["share_closer_to_train"] > 0.95 and d_copy["exact_copies_train"] == 1.0
    assert d_copy["dcr_train_median"] == 0 < d_copy["dcr_holdout_median"]


def test_exact_copies_are_all_counted():
    # identical rows come out of the nearest-neighbour search at ~1e-8, not 0: 100 copies of 1000 rows
    rng = np.random.default_rng(0)

    def table(n):
        return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n) * 1000,
                             "c": rng.choice([f"k{i}" for i in range(50)], n)})

    train, holdout = table(2000), table(2000)
    synthetic = pd.concat([train.iloc[:100], holdout.iloc[:900]], ignore_index=True)
    out = distance_to_closest_record(synthetic, train, holdout, max_rows=None)
    assert out["exact_copies_train"] == pytest.approx(0.1)
