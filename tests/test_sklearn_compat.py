"""DPMMDSynthesizer as a scikit-learn citizen: estimator checks, pipelines, searches, ledger, pickling."""

from __future__ import annotations

import math

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    parametrize_with_checks,
)

from skdpgen import DPMMDSynthesizer
from skdpgen.datasets import load_breast_cancer_table
from skdpgen.exceptions import LedgerCopyWarning, PrivacyBudgetExceeded
from skdpgen.flows import DPFlowSynthesizer
from skdpgen.metrics import tstr_scorer
from skdpgen.privacy import PrivacyLedger, compose_gdp, gdp_epsilon

# Tiny models: the checks fit dozens of times.
FAST = dict(n_iter=20, batch_size=64, hidden=(32,), hermite_order=4, latent_dim=8, random_state=0,
            device="cpu")

FLOW_FAST = dict(n_layers=2, hidden=(16,), epochs=2, batch_size=32, random_state=0, device="cpu")

# A public schema for the checks' numpy data ("x0", "x1", ...; at most 10 columns, values within
# [-200, 200]; some checks insert NaN) and their small integer labels.
GENERIC_SCHEMA = {f"x{i}": {"type": "continuous", "bounds": [-200, 200], "nullable": True} for i in range(10)}
GENERIC_SCHEMA["target"] = {"type": "categorical", "categories": list(range(6))}
GENERIC_SCHEMA["__target__"] = "target"



# ----------------------------------------------------------------------------- estimator checks
_DP_SCHEMA_REASON = ("DP schema estimate at epsilon=1 on the check's {n} rows: no histogram bin of a "
                     "column survives the Gaussian noise, so fit raises (correct; the declared-schema "
                     "and epsilon=inf instances pass this check)")
_DP_SCHEMA_FAILURES = {
    "check_fit_score_takes_y": 30,
    "check_estimators_overwrite_params": 21,
    "check_dont_overwrite_parameters": 20,
    "check_estimators_fit_returns_self": 21,
    "check_readonly_memmap_input": 21,
    "check_n_features_in_after_fitting": 15,
    "check_positive_only_tag_during_fit": 20,
    "check_estimators_dtypes": 20,
    "check_dtype_object": 56,
    "check_pipeline_consistency": 30,
    "check_estimators_pickle": 30,
    "check_f_contiguous_array_estimator": 20,
    "check_methods_sample_order_invariance": 20,
    "check_methods_subset_invariance": 20,
    "check_fit2d_1feature": 10,
    "check_dict_unchanged": 20,
    "check_fit2d_predict1d": 20,
}


def _expected_failed_checks(estimator) -> dict[str, str]:
    if estimator.schema is None and math.isfinite(estimator.epsilon):
        return {name: _DP_SCHEMA_REASON.format(n=n) for name, n in _DP_SCHEMA_FAILURES.items()}
    return {}


@parametrize_with_checks(
    [
        # the real private path: schema AND embedding released with DP (most of the budget on the
        # schema: the checks' tables have 10-100 rows)
        DPMMDSynthesizer(epsilon=1.0, schema_share=0.9, **FAST),
        # private embedding with a declared public schema (partial_fit available)
        DPMMDSynthesizer(epsilon=1.0, schema=GENERIC_SCHEMA, **FAST),
        # no privacy: the same code path as the first, without noise
        DPMMDSynthesizer(epsilon=float("inf"), **FAST),
        # the flow: DP-SGD with a declared schema, and the non-private reference
        DPFlowSynthesizer(epsilon=1.0, schema=GENERIC_SCHEMA, **FLOW_FAST),
        DPFlowSynthesizer(epsilon=float("inf"), **FLOW_FAST),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("private", [False, True])
def test_dataframe_column_names_consistency(private):
    # not among the checks scikit-learn 1.9 yields for this kind of estimator
    if private:
        schema = {f"col_{i}": {"type": "continuous", "bounds": [-10, 10]} for i in range(8)}
        schema["target"] = {"type": "categorical", "categories": [0, 1]}
        est = DPMMDSynthesizer(epsilon=1.0, schema=schema, **FAST)
    else:
        est = DPMMDSynthesizer(epsilon=float("inf"), **FAST)
    check_dataframe_column_names_consistency("DPMMDSynthesizer", est)


# ----------------------------------------------------------------------------- shared data
@pytest.fixture(scope="module")
def cancer():
    X, y, schema = load_breast_cancer_table()
    rows = np.random.default_rng(0).permutation(len(X))[:240]  # shuffled: KFold does not shuffle
    return X.iloc[rows].reset_index(drop=True), y.iloc[rows].reset_index(drop=True), schema


def _mixed_table(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "income": rng.uniform(0, 5e4, n),
        "sex": rng.choice(["F", "M"], n).astype(object),
        "score": rng.normal(size=n),
    })
    X.loc[3, "score"] = np.nan
    y = pd.Series(rng.choice(["no", "yes"], n), name="label").astype(object)
    schema = {"age": {"type": "integer", "bounds": [0, 100]},
              "income": {"type": "continuous", "bounds": [0, 1e5]},
              "sex": {"type": "categorical", "categories": ["F", "M"]},
              "score": {"type": "continuous", "bounds": [-5, 5], "nullable": True},
              "label": {"type": "categorical", "categories": ["no", "yes"]},
              "__target__": "label"}
    return X, y, schema


# ----------------------------------------------------------------------------- estimator behaviour
def test_inputs_not_mutated():
    X, y, schema = _mixed_table()
    X0, y0 = X.copy(deep=True), y.copy(deep=True)
    est = DPMMDSynthesizer(schema=schema, **FAST).fit(X, y)
    est.score(X, y)
    est.sample(5, return_y=True)
    pd.testing.assert_frame_equal(X, X0)
    pd.testing.assert_series_equal(y, y0)

    A = np.random.default_rng(1).normal(size=(30, 3))
    A[0, 1] = np.nan
    A0 = A.copy()
    est = DPMMDSynthesizer(epsilon=float("inf"), **FAST).fit(A)
    est.score(A)
    np.testing.assert_array_equal(A, A0)


def test_random_state_is_honoured():
    X, y, schema = _mixed_table()
    a = DPMMDSynthesizer(schema=schema, **FAST).fit(X, y)
    b = DPMMDSynthesizer(schema=schema, **FAST).fit(X, y)
    for est in (a, b):
        assert est.privacy_report_["epsilon"] == pytest.approx(1.0)
    Xa, ya = a.sample(50, random_state=3, return_y=True)
    Xb, yb = b.sample(50, random_state=3, return_y=True)
    pd.testing.assert_frame_equal(Xa, Xb)
    pd.testing.assert_series_equal(ya, yb)
    assert torch.equal(a.embedding_, b.embedding_)
    # a different sampling seed, or a different fit seed, gives other rows
    assert not Xa.equals(a.sample(50, random_state=4))
    c = DPMMDSynthesizer(schema=schema, **{**FAST, "random_state": 1}).fit(X, y)
    assert not torch.equal(a.embedding_, c.embedding_)
    # refitting the same estimator reproduces itself
    a.fit(X, y)
    pd.testing.assert_frame_equal(a.sample(50, random_state=3), Xa)


@pytest.mark.parametrize("random_state", [None, "RandomState"])
def test_score_deterministic_for_a_fitted_estimator(random_state):
    X, y, schema = _mixed_table()
    rs = np.random.RandomState(0) if random_state == "RandomState" else None
    est = DPMMDSynthesizer(schema=schema, **{**FAST, "random_state": rs}).fit(X, y)
    s = est.score(X, y)
    assert np.isfinite(s) and s <= 0
    assert est.score(X, y) == s
    assert est.score(X) == est.score(X)


def test_array_at_score_time_after_dataframe_fit():
    X, y, schema = load_breast_cancer_table()
    est = DPMMDSynthesizer(schema=schema, **FAST).fit(X.iloc[:100])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        s = est.score(X.iloc[100:200].to_numpy())
    assert s == est.score(X.iloc[100:200])


def test_output_matches_input_kind():
    X, y, schema = _mixed_table()
    est = DPMMDSynthesizer(schema=schema, **FAST).fit(X, y)
    S, t = est.sample(7, random_state=0, return_y=True)
    assert list(S.columns) == list(X.columns) and S.dtypes.equals(X.dtypes)
    assert set(t) <= {"no", "yes"} and t.name == "label"
    np.testing.assert_array_equal(est.get_feature_names_out(), X.columns.to_numpy(dtype=object))
    A = np.random.default_rng(0).normal(size=(25, 2)).astype(np.float32)
    out = DPMMDSynthesizer(epsilon=float("inf"), **FAST).fit(A).sample(4, random_state=0)
    assert isinstance(out, np.ndarray) and out.shape == (4, 2)


def test_partial_fit_only_with_a_declared_schema():
    X, y, schema = _mixed_table()
    assert not hasattr(DPMMDSynthesizer(), "partial_fit")
    est = DPMMDSynthesizer(schema=schema, **FAST)
    assert hasattr(est, "partial_fit")
    est.partial_fit(X.iloc[:30], y.iloc[:30]).partial_fit(X.iloc[30:], y.iloc[30:]).finalize()
    assert est.sample(3, random_state=0).shape == (3, 4)
    assert est.privacy_report_["epsilon"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- composition
def _first_columns(X):
    return X.iloc[:, :6]


def test_pipeline(cancer):
    X, y, schema = cancer
    pipe = make_pipeline(FunctionTransformer(_first_columns),
                         DPMMDSynthesizer(schema=schema, epsilon=2.0, **FAST))
    pipe.fit(X, y)
    s = pipe.score(X, y)
    assert np.isfinite(s) and s <= 0
    S, t = pipe[-1].sample(20, random_state=0, return_y=True)
    assert list(S.columns) == list(X.columns[:6])
    assert set(t) <= {"malignant", "benign"}
    clone(pipe).fit(X, y)  # the pipeline clones like any other


@pytest.mark.parametrize("scoring", [None, "tstr"])
def test_grid_search_with_ledger(cancer, scoring):
    X, y, schema = cancer
    ledger = PrivacyLedger()
    est = DPMMDSynthesizer(schema=schema, ledger=ledger, **FAST)
    assert clone(est).ledger is ledger
    grid = [0.5, 1.0, 2.0]
    search = GridSearchCV(est, {"epsilon": grid}, cv=2, error_score="raise",
                          scoring=tstr_scorer() if scoring == "tstr" else None)
    search.fit(X, y)
    assert search.best_estimator_.ledger is ledger
    assert search.best_params_["epsilon"] in grid
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()

    entries = ledger.entries
    assert len(entries) == 2 * len(grid) + 1  # one release per fit: folds x candidates + refit
    assert all(e.name == "DPMMDSynthesizer.embedding" and e.mu is not None for e in entries)
    fitted = sorted(e.epsilon for e in entries)
    assert fitted == pytest.approx(sorted(grid * 2 + [search.best_params_["epsilon"]]), rel=1e-6)
    # exact GDP composition of all the fits, computed here from the recorded mu values
    mu = math.sqrt(math.fsum(e.mu**2 for e in entries))
    assert mu == pytest.approx(compose_gdp(e.mu for e in entries))
    total_delta = math.fsum(e.delta for e in entries)
    eps, delta = ledger.spent()
    assert delta == pytest.approx(total_delta)
    assert eps == pytest.approx(gdp_epsilon(mu, total_delta), rel=1e-9)
    assert eps <= math.fsum(e.epsilon for e in entries)
    assert eps < 2 * sum(grid) + search.best_params_["epsilon"]


def test_ledger_refuses_overspending_before_recording(cancer):
    X, y, schema = cancer
    ledger = PrivacyLedger(max_epsilon=0.5)
    est = DPMMDSynthesizer(schema=schema, epsilon=1.0, ledger=ledger, **FAST)
    with pytest.raises(PrivacyBudgetExceeded, match="max_epsilon"):
        est.fit(X, y)
    assert ledger.entries == []
    assert not hasattr(est, "privacy_report_")
    # a DP schema estimate and the embedding are refused together
    with pytest.raises(PrivacyBudgetExceeded):
        DPMMDSynthesizer(epsilon=1.0, ledger=ledger, **FAST).fit(X.iloc[:, :2])
    assert ledger.entries == []
    est.set_params(epsilon=0.5).fit(X, y)
    assert len(ledger.entries) == 1


def test_joblib_round_trip(cancer, tmp_path):
    X, y, schema = cancer
    est = DPMMDSynthesizer(schema=schema, ledger=PrivacyLedger(), **FAST).fit(X, y)
    path = tmp_path / "syn.joblib"
    with pytest.warns(LedgerCopyWarning):  # its ledger is saved as a copy
        joblib.dump(est, path)
    back = joblib.load(path)
    pd.testing.assert_frame_equal(back.sample(30, random_state=5), est.sample(30, random_state=5))
    Xa, ya = est.sample(30, random_state=6, return_y=True)
    Xb, yb = back.sample(30, random_state=6, return_y=True)
    pd.testing.assert_frame_equal(Xa, Xb)
    pd.testing.assert_series_equal(ya, yb)
    assert back.score(X, y) == est.score(X, y)
    assert back.privacy_report_ == est.privacy_report_
    assert len(back.ledger.entries) == 1


def test_process_workers_do_not_share_the_ledger_and_the_user_is_warned(cancer):
    # loky pickles the estimator (and its ledger) in the parent: the warning is raised where the user sees it
    from sklearn.model_selection import KFold, cross_val_score

    X, y, schema = cancer
    ledger = PrivacyLedger()
    est = DPMMDSynthesizer(schema=schema, ledger=ledger, **FAST)
    with pytest.warns(LedgerCopyWarning, match="NOT recorded"):
        cross_val_score(est, X, y, cv=KFold(2), n_jobs=2)
    assert len(ledger) == 0  # what the warning says: the workers' fits did not come back
