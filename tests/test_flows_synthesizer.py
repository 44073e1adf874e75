"""DPFlowSynthesizer (first version): exact density in original units, DP-SGD release, sampling."""

import math

import numpy as np
import pandas as pd
import pytest

from skdpgen import PrivacyLedger
from skdpgen.flows import DPFlowSynthesizer

FAST = dict(n_layers=4, hidden=(32, 32), epochs=8, batch_size=256, device="cpu")



def mixed_table(n, seed):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(0, 1, n).clip(-4, 4), "b": rng.integers(0, 10, n),
                      "c": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2])})
    X["c"] = X["c"].astype(object)
    return X


SCHEMA = {"a": {"type": "continuous", "bounds": [-4, 4]}, "b": {"type": "integer", "bounds": [0, 9]},
          "c": {"type": "categorical", "categories": ["x", "y", "z"]}}


def test_density_in_original_units_integrates_to_one():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"v": rng.normal(50, 10, 3000).clip(0, 100)})
    flow = DPFlowSynthesizer(schema={"v": {"type": "continuous", "bounds": [0, 100]}}, epsilon=math.inf,
                             random_state=0, **FAST).fit(X)
    grid = np.linspace(0, 100, 4001)
    dens = np.exp(flow.score_samples(pd.DataFrame({"v": grid})))
    mass = np.trapezoid(dens, grid)
    assert 0.97 < mass < 1.0 + 1e-3  # the flow's mass outside the public bounds is clipped at sampling
    assert np.isneginf(flow.score_samples(pd.DataFrame({"v": [-1.0, 101.0]}))).all()


def test_non_private_log_likelihood_close_to_truth():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"v": rng.normal(0, 1, 6000).clip(-5, 5)})
    X_te = pd.DataFrame({"v": rng.normal(0, 1, 3000).clip(-5, 5)})
    flow = DPFlowSynthesizer(schema={"v": {"type": "continuous", "bounds": [-5, 5]}}, epsilon=math.inf,
                             random_state=0, **{**FAST, "epochs": 20}).fit(X)
    true = float(np.mean(-0.5 * X_te["v"] ** 2 - 0.5 * math.log(2 * math.pi)))
    assert abs(flow.score(X_te) - true) < 0.05  # measured: 0.0007 nats/row


def test_private_fit_records_dpsgd_release_and_samples_right_types():
    X = mixed_table(3000, 2)
    ledger = PrivacyLedger()
    flow = DPFlowSynthesizer(schema=SCHEMA, epsilon=1.0, random_state=0, ledger=ledger, **FAST).fit(X)
    count, rel = ledger.entries
    assert count.name == "DPFlowSynthesizer.row_count" and count.sensitivity == 1.0
    assert rel.mechanism == "subsampled_gaussian" and rel.epsilon <= 1.0 + 1e-9
    # the sampling rate comes from the DP row count, not from the true n
    assert rel.sample_rate == pytest.approx(256 / flow.n_samples_estimate_)
    assert flow.n_samples_estimate_ != len(X)
    assert flow.dpsgd_.noise_multiplier > 0.5 and flow.privacy_report_["epsilon"] <= 1.0 + 1e-9
    assert flow.privacy_report_["neighbouring"] == "add/remove one row"
    fake = flow.sample(1000, random_state=0)
    assert list(fake.columns) == list(X.columns) and (fake.dtypes == X.dtypes).all()
    assert set(fake["c"]) <= {"x", "y", "z"} and fake["b"].between(0, 9).all()
    pd.testing.assert_frame_equal(fake, flow.sample(1000, random_state=0))
    assert np.isfinite(flow.score(mixed_table(200, 3)))


def test_estimated_schema_and_dpsgd_compose_within_budget():
    X = mixed_table(4000, 4)
    ledger = PrivacyLedger()
    DPFlowSynthesizer(epsilon=2.0, random_state=0, ledger=ledger, **{**FAST, "epochs": 2}).fit(X)
    names = [r.name for r in ledger.entries]
    assert names == ["schema", "DPFlowSynthesizer.row_count", "DPFlowSynthesizer.dpsgd"]
    eps, delta = ledger.spent()
    assert eps <= 2.0 + 1e-9 and delta <= 1e-5 * (1 + 1e-9)


def test_budget_refused_before_training():
    from skdpgen.exceptions import PrivacyBudgetExceeded

    ledger = PrivacyLedger(max_epsilon=0.5)
    flow = DPFlowSynthesizer(schema=SCHEMA, epsilon=1.0, ledger=ledger, **FAST)
    with pytest.raises(PrivacyBudgetExceeded):
        flow.fit(mixed_table(500, 0))
    assert len(ledger) == 0 and not hasattr(flow, "flow_")


def test_y_is_ignored_like_sklearn_density_estimators():
    X = mixed_table(300, 0)
    a = DPFlowSynthesizer(schema=SCHEMA, random_state=0, **{**FAST, "epochs": 1}).fit(X, np.zeros(300))
    b = DPFlowSynthesizer(schema=SCHEMA, random_state=0, **{**FAST, "epochs": 1}).fit(X)
    pd.testing.assert_frame_equal(a.sample(50, random_state=0), b.sample(50, random_state=0))


def test_grid_search_selects_by_held_out_likelihood_and_ledger_counts_every_fit():
    from sklearn.model_selection import GridSearchCV

    X = mixed_table(600, 5)
    ledger = PrivacyLedger()
    search = GridSearchCV(DPFlowSynthesizer(schema=SCHEMA, random_state=0, ledger=ledger, **{**FAST, "epochs": 1}),
                          {"epsilon": [0.5, 4.0], "n_layers": [2, 4]}, cv=2).fit(X)
    assert len(ledger) == 2 * (4 * 2 + 1)  # (row count + DP-SGD) per fit: 4 candidates x 2 folds + refit
    assert np.isfinite(search.best_score_) and search.best_params_["epsilon"] in (0.5, 4.0)
    eps, _ = ledger.spent()
    assert eps <= 2 * (0.5 + 0.5 + 4.0 + 4.0) + search.best_params_["epsilon"] + 1e-9  # <= basic composition
