"""The privacy ledger: exact composition, budget refusal, survival of clone/deepcopy/pickle."""

from __future__ import annotations

import copy
import json
import math
import pickle
import threading
import warnings

import numpy as np
import pytest
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as opacus_rdp
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GridSearchCV

from skdpgen.exceptions import LedgerCopyWarning, PrivacyBudgetExceeded
from skdpgen.privacy import (
    ADD_REMOVE,
    RDP_ORDERS,
    PrivacyLedger,
    PrivacyRelease,
    gdp_epsilon,
    subsampled_gaussian_epsilon,
)


def gaussian(mu=0.5, delta=1e-6, **kw):
    return PrivacyRelease.gaussian("g", mu=mu, delta=delta, **kw)


def subsampled(sigma=1.0, q=0.05, steps=100, delta=1e-6):
    return PrivacyRelease(
        name="dpsgd", mechanism="subsampled_gaussian", delta=delta, noise_multiplier=sigma,
        sample_rate=q, steps=steps, accountant="rdp",
        epsilon=subsampled_gaussian_epsilon(sigma, q, steps, delta, "rdp"))


# ---------------------------------------------------------------------------------------------
# composition


@pytest.mark.parametrize("k", [1, 2, 9, 50])
def test_equal_gaussian_releases_compose_to_sqrt_k_mu(k):
    ledger = PrivacyLedger()
    ledger.record(*[gaussian(mu=0.3, delta=2e-7) for _ in range(k)])
    eps, delta = ledger.spent()
    assert delta == pytest.approx(k * 2e-7, rel=1e-12)
    assert eps == pytest.approx(gdp_epsilon(math.sqrt(k) * 0.3, k * 2e-7), rel=1e-12)
    assert eps <= sum(e.epsilon for e in ledger.entries) * (1 + 1e-12)


def test_heterogeneous_gaussian_releases():
    mus, deltas = [0.1, 0.7, 1.3], [1e-7, 3e-6, 5e-6]
    ledger = PrivacyLedger()
    ledger.record(*[gaussian(m, d) for m, d in zip(mus, deltas, strict=True)])
    eps, delta = ledger.spent()
    assert eps == pytest.approx(gdp_epsilon(math.sqrt(sum(m * m for m in mus)), sum(deltas)), rel=1e-12)
    # stated at another delta
    eps2, delta2 = ledger.spent(delta=1e-3)
    assert delta2 == 1e-3 and eps2 < eps
    assert eps2 == pytest.approx(gdp_epsilon(math.sqrt(sum(m * m for m in mus)), 1e-3), rel=1e-12)
    with pytest.raises(ValueError, match="delta"):
        PrivacyLedger().spent(delta=float("nan"))


def test_spent_never_exceeds_basic_composition():
    rng = np.random.default_rng(0)
    ledger = PrivacyLedger()
    for _ in range(30):
        ledger.record(gaussian(mu=float(rng.uniform(0.05, 3)), delta=float(rng.uniform(1e-9, 1e-6))))
        eps, delta = ledger.spent()
        entries = ledger.entries
        assert eps <= sum(e.epsilon for e in entries) * (1 + 1e-12)
        assert delta == pytest.approx(sum(e.delta for e in entries), rel=1e-12)
    # a single large-mu release: GDP composition cannot beat its own epsilon
    one = PrivacyLedger()
    one.record(gaussian(mu=20.0, delta=1e-5))
    assert one.spent()[0] == pytest.approx(one.entries[0].epsilon, rel=1e-12)


def test_sparse_histogram_extra_delta_composes_additively():
    a = gaussian(mu=0.4, delta=2e-6, extra_delta=1e-6, mechanism="gaussian_sparse_histogram")
    b = gaussian(mu=0.4, delta=2e-6, extra_delta=1e-6, mechanism="gaussian_sparse_histogram")
    ledger = PrivacyLedger()
    ledger.record(a, b)
    eps, delta = ledger.spent()
    assert delta == pytest.approx(4e-6)
    assert eps == pytest.approx(gdp_epsilon(math.sqrt(2) * 0.4, 2e-6), rel=1e-12)
    with pytest.raises(ValueError, match="extra_delta"):
        gaussian(delta=1e-6, extra_delta=2e-6)


def test_repeated_subsampled_runs_compose_jointly():
    # five identical DP-SGD runs: the joint RDP bound is Opacus's RDP accountant on 5T steps
    runs = [subsampled() for _ in range(5)]
    ledger = PrivacyLedger()
    ledger.record(*runs)
    eps, delta = ledger.spent()
    acc = RDPAccountant()
    acc.history = [(1.0, 0.05, 500)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = acc.get_epsilon(delta=5e-6, alphas=list(RDP_ORDERS))
    assert delta == pytest.approx(5e-6)
    assert eps == pytest.approx(ref, rel=1e-10)
    assert eps < 0.5 * sum(r.epsilon for r in runs)  # much tighter than basic composition


def test_mixed_gdp_and_subsampled_entries():
    g = [gaussian(mu=0.5, delta=1e-6) for _ in range(4)]
    s = subsampled(sigma=1.2, q=0.05, steps=100, delta=2e-6)
    o = PrivacyRelease(name="laplace", mechanism="laplace", epsilon=0.1, delta=0.0)
    ledger = PrivacyLedger()
    ledger.record(*g, s, o)
    eps, delta = ledger.spent()
    assert delta == pytest.approx(6e-6)
    basic = sum(e.epsilon for e in ledger.entries)
    # exact GDP for the four Gaussian releases (mu = 1) at their own 4e-6, plus the others
    split = gdp_epsilon(1.0, 4e-6) + s.epsilon + 0.1
    # everything Gaussian under RDP (a mu-GDP release has RDP alpha mu^2 / 2), computed with
    # Opacus directly, at the total delta minus the Laplace release's
    orders = np.array(RDP_ORDERS)
    rdp = 4 * orders * 0.5**2 / 2 + opacus_rdp.compute_rdp(q=0.05, noise_multiplier=1.2, steps=100,
                                                             orders=list(orders))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint, _ = opacus_rdp.get_privacy_spent(orders=list(orders), rdp=rdp, delta=6e-6)
    assert eps == pytest.approx(min(basic, split, joint + 0.1), rel=1e-10)
    assert eps <= basic


def test_infinite_and_zero_mu():
    ledger = PrivacyLedger()
    ledger.record(gaussian(mu=0.0, delta=1e-6))
    assert ledger.spent() == (0.0, pytest.approx(1e-6))
    ledger.record(gaussian(mu=math.inf, delta=1e-6))
    assert math.isinf(ledger.spent()[0])
    assert PrivacyLedger().spent() == (0.0, 0.0)


def test_release_validation():
    with pytest.raises(ValueError, match="epsilon"):
        PrivacyRelease(name="x", mechanism="gaussian", epsilon=float("nan"), delta=0.0)
    with pytest.raises(ValueError, match="delta"):
        PrivacyRelease(name="x", mechanism="gaussian", epsilon=1.0, delta=2.0)
    with pytest.raises(ValueError, match="mu"):
        PrivacyRelease(name="x", mechanism="gaussian", epsilon=1.0, delta=1e-6, mu=-1.0)
    with pytest.raises(ValueError, match="max_epsilon"):
        PrivacyLedger(max_epsilon=-1.0)
    with pytest.raises(TypeError):
        PrivacyLedger().record({"epsilon": 1.0})


def test_subsampled_release_constructor():
    r = PrivacyRelease.subsampled("fit", noise_multiplier=1.0, sample_rate=0.05, steps=100, delta=1e-5,
                                  accountant="rdp", sensitivity=2.0)
    assert r.epsilon == pytest.approx(subsampled_gaussian_epsilon(1.0, 0.05, 100, 1e-5, "rdp"))
    assert r.noise_std == 2.0 and r.mu is None and r.steps == 100


# ---------------------------------------------------------------------------------------------
# budget


def test_check_raises_before_recording_and_leaves_entries_unchanged():
    ledger = PrivacyLedger(max_epsilon=3.0, max_delta=1e-5)
    ledger.record(gaussian(mu=0.5, delta=1e-6))  # epsilon 2.25
    before = ledger.entries
    spent_before = ledger.spent()
    big = gaussian(mu=2.0, delta=1e-6)
    with pytest.raises(PrivacyBudgetExceeded, match="max_epsilon"):
        ledger.check([big])
    with pytest.raises(PrivacyBudgetExceeded, match="max_epsilon"):
        ledger.record(big)
    with pytest.raises(PrivacyBudgetExceeded, match="max_delta"):
        ledger.record(gaussian(mu=0.01, delta=2e-5))
    assert ledger.entries == before
    assert ledger.spent() == spent_before
    # a release that fits is accepted; check() itself records nothing
    small = gaussian(mu=0.2, delta=1e-6)
    eps, _ = ledger.check([small])
    assert len(ledger) == 1
    ledger.record(small)
    assert ledger.spent()[0] == pytest.approx(eps)


def test_reserve_checks_and_records_the_plan_and_settle_replaces_it():
    ledger = PrivacyLedger(max_epsilon=6.0)
    first = gaussian(mu=0.3, delta=1e-6)
    ledger.record(first)
    plan = subsampled(sigma=1.0, q=0.05, steps=100)
    token = ledger.reserve([plan])
    assert ledger.entries == [first, plan]  # the plan counts at once: a concurrent check sees it
    planned_eps = ledger.spent()[0]
    other = gaussian(mu=1.0, delta=1e-6)  # epsilon 4.9: fits the budget alone, not with the plan
    PrivacyLedger(max_epsilon=6.0).check([first, other])
    with pytest.raises(PrivacyBudgetExceeded):
        ledger.check([other])
    later = gaussian(mu=0.1, delta=1e-6)
    ledger.record(later)
    stopped = subsampled(sigma=1.0, q=0.05, steps=30)  # early stopping: fewer steps than planned
    ledger.settle(token, [stopped])
    assert ledger.entries == [first, stopped, later]  # in place of the reservation
    assert ledger.spent()[0] < planned_eps
    ledger.settle(token, [])  # settled again: nothing was released after all
    assert ledger.entries == [first, later]


def test_refused_reserve_records_nothing_and_settle_check_refuses_unchanged():
    ledger = PrivacyLedger(max_epsilon=3.0)
    ledger.record(gaussian(mu=0.5, delta=1e-6))  # epsilon 2.25
    before = ledger.entries
    with pytest.raises(PrivacyBudgetExceeded):
        ledger.reserve([gaussian(mu=2.0, delta=1e-6)])
    assert ledger.entries == before
    small = gaussian(mu=0.1, delta=1e-6)
    token = ledger.reserve([small])
    with pytest.raises(PrivacyBudgetExceeded):  # narrowing to a plan that does not fit: nothing changes
        ledger.settle(token, [gaussian(mu=2.0, delta=1e-6)], check=True)
    assert ledger.entries == [*before, small]
    ledger.settle(token, [gaussian(mu=2.0, delta=1e-6)])  # what was released is recorded, whatever it costs
    assert ledger.spent()[0] > 3.0
    with pytest.raises(ValueError, match="this ledger"):
        PrivacyLedger().settle(token, [])
    with pytest.raises(TypeError):
        ledger.reserve(["not a release"])
    with pytest.warns(LedgerCopyWarning):
        copy_ = pickle.loads(pickle.dumps(ledger))  # pickling unchanged: the records, a new account
    assert copy_.entries == ledger.entries and copy.deepcopy(ledger) is ledger


def test_budget_exactly_met_is_accepted():
    # the GDP composition of two mu releases is exactly sqrt(2) mu: a budget set at that value
    mu, d = 0.7, 1e-6
    ledger = PrivacyLedger(max_epsilon=gdp_epsilon(math.sqrt(2) * mu, 2 * d), max_delta=2 * d)
    ledger.record(gaussian(mu, d), gaussian(mu, d))
    with pytest.raises(PrivacyBudgetExceeded):
        ledger.record(gaussian(0.01, 1e-12))


# ---------------------------------------------------------------------------------------------
# one account everywhere


class Fitter(BaseEstimator):
    """A tiny estimator that records one Gaussian release per fit."""

    def __init__(self, mu=0.1, ledger=None):
        self.mu = mu
        self.ledger = ledger

    def fit(self, X, y=None):
        if self.ledger is not None:
            self.ledger.record(PrivacyRelease.gaussian("fit", mu=self.mu, delta=1e-7,
                                                       owner=type(self).__name__))
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def score(self, X, y=None):
        return -self.mu


def test_clone_and_deepcopy_keep_the_same_ledger():
    ledger = PrivacyLedger(max_epsilon=5.0)
    est = Fitter(ledger=ledger)
    assert clone(est).ledger is ledger
    assert copy.deepcopy(est).ledger is ledger
    assert copy.copy(ledger) is ledger
    assert copy.deepcopy({"a": [ledger]})["a"][0] is ledger
    clone(est).fit(np.zeros((3, 2)))
    assert len(ledger) == 1


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_records_every_fit(n_jobs):
    from joblib import parallel_backend

    ledger = PrivacyLedger()
    search = GridSearchCV(Fitter(ledger=ledger), {"mu": [0.1, 0.2]}, cv=3, n_jobs=n_jobs)
    with parallel_backend("threading"):
        search.fit(np.zeros((9, 2)))
    assert len(ledger) == 2 * 3 + 1  # every candidate on every fold, plus the refit
    eps, _ = ledger.spent()
    mu = math.sqrt(3 * 0.1**2 + 3 * 0.2**2 + search.best_params_["mu"] ** 2)
    assert eps == pytest.approx(gdp_epsilon(mu, 7e-7), rel=1e-12)


def test_pickle_round_trip():
    ledger = PrivacyLedger(max_epsilon=8.0, max_delta=1e-4)
    ledger.record(gaussian(0.5, 1e-6), subsampled())
    with pytest.warns(LedgerCopyWarning, match="n_jobs=1"):  # the loky pitfall is named
        back = pickle.loads(pickle.dumps(ledger))
    assert back is not ledger  # a copy of the account, not the same one
    assert back.entries == ledger.entries
    assert back.spent() == ledger.spent()
    assert (back.max_epsilon, back.max_delta) == (8.0, 1e-4)
    back.record(gaussian(0.1, 1e-6))  # the lock was rebuilt
    assert len(back) == 3 and len(ledger) == 2


def test_records_from_many_threads():
    ledger = PrivacyLedger()
    n_threads, per_thread = 8, 25

    def work():
        for _ in range(per_thread):
            ledger.record(gaussian(0.05, 1e-8))

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    k = n_threads * per_thread
    assert len(ledger) == k
    assert ledger.spent()[0] == pytest.approx(gdp_epsilon(math.sqrt(k) * 0.05, k * 1e-8), rel=1e-12)


def test_budget_is_atomic_under_threads():
    # the budget admits exactly 16 releases of mu=0.25 (sqrt(16) * 0.25 = 1); 8 threads try 5 each
    mu, d = 0.25, 1e-7
    ledger = PrivacyLedger(max_epsilon=gdp_epsilon(1.0, 16 * d))
    refused = []

    def work():
        for _ in range(5):
            try:
                ledger.record(gaussian(mu, d))
            except PrivacyBudgetExceeded:
                refused.append(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ledger) == 16 and len(refused) == 40 - 16
    assert ledger.spent()[0] <= ledger.max_epsilon * (1 + 1e-9)


# ---------------------------------------------------------------------------------------------
# views


def test_to_frame():
    empty = PrivacyLedger().to_frame()
    assert len(empty) == 0 and {"name", "epsilon", "delta", "mu"} <= set(empty.columns)
    ledger = PrivacyLedger()
    ledger.record(gaussian(0.5, 1e-6, sensitivity=1.0, noise_std=2.0), subsampled())
    frame = ledger.to_frame()
    assert len(frame) == 2
    assert list(frame["name"]) == ["g", "dpsgd"]
    assert frame["epsilon"].tolist() == [e.epsilon for e in ledger.entries]
    assert frame.loc[0, "noise_std"] == 2.0


def test_report():
    ledger = PrivacyLedger(max_epsilon=10.0)
    rep = ledger.report()
    assert rep["epsilon"] == 0.0 and rep["n_releases"] == 0 and rep["releases"] == []
    assert rep["neighbouring"] == ADD_REMOVE
    ledger.record(gaussian(0.5, 1e-6), gaussian(0.5, 1e-6))
    rep = ledger.report()
    assert {"epsilon", "delta", "neighbouring", "n_releases", "releases"} <= set(rep)
    assert (rep["epsilon"], rep["delta"]) == ledger.spent()
    assert rep["n_releases"] == 2 and rep["neighbouring"] == ADD_REMOVE
    assert rep["releases"][0]["mu"] == 0.5 and rep["max_epsilon"] == 10.0
    json.dumps(rep)  # plain types only
    at = ledger.report(delta=1e-3)
    assert at["delta"] == 1e-3 and at["epsilon"] < rep["epsilon"]
    other = PrivacyRelease(name="x", mechanism="gaussian", epsilon=0.1, delta=0.0,
                           neighbouring="replace one row")
    ledger.record(other)
    assert ledger.report()["neighbouring"].startswith("mixed")
    assert "3 releases" in repr(ledger)
