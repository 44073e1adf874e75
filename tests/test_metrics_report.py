"""skdpgen.metrics.evaluate: the tidy report."""

import re

import numpy as np
import pandas as pd
import pytest

import skdpgen.metrics as metrics
from skdpgen.metrics import evaluate

SCHEMA = {"x": {"type": "continuous", "bounds": [-6, 6]},
          "z": {"type": "integer", "bounds": [0, 10]},
          "c": {"type": "categorical", "categories": ["a", "b"]},
          "y": {"type": "categorical", "categories": [0, 1]},
          "__target__": "y"}


def draw(n, rng, noisy=False):
    x = rng.normal(size=n)
    c = np.where(rng.random(n) < 0.5, "a", "b").astype(object)
    z = rng.integers(0, 11, n)
    y = ((x + (c == "a") + rng.logistic(size=n) * 0.5) > 0.5).astype(int)
    if noisy:
        y = rng.permutation(y)
    return pd.DataFrame({"x": x, "z": z, "c": c, "y": y})


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return draw(1200, rng), draw(1200, rng), draw(600, rng), draw(1200, rng, noisy=True)


def test_evaluate_tidy_table(data):
    real, good, test, bad = data
    rep = evaluate(real, good, schema=SCHEMA, test=test, max_rows=1000)
    assert list(rep.columns) == ["section", "metric", "column", "model", "value", "reference", "better"]
    assert set(rep["section"]) == {"fidelity", "utility", "privacy"}
    assert set(rep.loc[rep.metric == "tvd_1way", "column"]) == {"x", "z", "c", "y"}
    assert rep["value"].notna().all() and rep.attrs["seconds"] > 0
    util = rep[rep.section == "utility"]
    assert set(util["model"]) == {"hist_gradient_boosting", "logistic_regression", "random_forest"}
    assert util["reference"].notna().all()  # the real-data ceiling

    def value(r, metric, model=""):
        return r.loc[(r.metric == metric) & (r.model == model), "value"].item()

    rep_bad = evaluate(real, bad, schema=SCHEMA, test=test, max_rows=1000, sections=["utility", "fidelity"])
    assert "privacy" not in set(rep_bad["section"])
    assert value(rep, "tstr_roc_auc", "logistic_regression") > value(rep_bad, "tstr_roc_auc", "logistic_regression")
    assert value(rep, "tvd_2way_mean") < value(rep_bad, "tvd_2way_mean")
    assert 0.4 < value(rep, "share_closer_to_train") < 0.6


def test_evaluate_without_schema_or_target(data):
    real, good, _, _ = data
    rep = evaluate(real, good, sections=["fidelity"])
    assert set(rep["section"]) == {"fidelity"}
    # without test the real table is split for the utility part; no holdout -> no privacy rows
    rep2 = evaluate(real, good, target="y", sections=["utility", "privacy"], models=None, max_rows=800)
    assert set(rep2["section"]) == {"utility"}


def test_evaluate_errors(data):
    real, good, _, _ = data
    with pytest.raises(ValueError, match="lacks columns"):
        evaluate(real, good.drop(columns="x"))
    with pytest.raises(ValueError, match="target"):
        evaluate(real, good, target="nope")
    with pytest.raises(ValueError, match="sections"):
        evaluate(real, good, sections=["speed"])
    with pytest.raises(ValueError, match=r"unknown sections \['speed'\]"):
        evaluate(real, good, sections="speed")


def test_evaluate_single_section_string(data):
    real, good, _, _ = data
    rep = evaluate(real, good, sections="fidelity")  # a string is one section, not its characters
    assert set(rep["section"]) == {"fidelity"}


def test_evaluate_nullable_numeric_columns(data):
    # the synthesizers return Int64 / Float64 columns with pd.NA; every section must accept them
    real, good, test, _ = data
    tables = []
    for frame in (real, good, test):
        frame = frame.copy()
        frame["z"] = pd.array(frame["z"].to_numpy(), dtype="Int64")
        frame.loc[::9, "z"] = pd.NA
        frame["x"] = pd.array(frame["x"].to_numpy(), dtype="Float64")
        frame.loc[::11, "x"] = pd.NA
        tables.append(frame)
    schema = {**SCHEMA, "x": {**SCHEMA["x"], "nullable": True}, "z": {**SCHEMA["z"], "nullable": True}}
    for sch in (schema, None):
        rep = evaluate(tables[0], tables[1], target="y", schema=sch, test=tables[2], max_rows=600)
        assert set(rep["section"]) == {"fidelity", "utility", "privacy"}
        assert rep["value"].notna().all()


def test_evaluate_detection_auc_does_not_reward_copies(data):
    # better="lower" for detection_auc: a copy of the real rows must not beat an independent sample
    real, good, _, _ = data
    fresh = evaluate(real, good, schema=SCHEMA, sections="fidelity", max_rows=600)
    with pytest.warns(UserWarning, match="copies or near-copies of real rows"):
        copied = evaluate(real, real.copy(), schema=SCHEMA, sections="fidelity", max_rows=600)
    row = copied[copied.metric == "detection_auc"].iloc[0]
    assert row["better"] == "lower" and row["reference"] == 0.5
    auc_fresh = fresh.loc[fresh.metric == "detection_auc", "value"].item()
    assert 0.5 <= auc_fresh < 0.6 < row["value"]


class _Sampler:
    """A fitted "synthesizer" that returns fixed rows (with their target)."""

    def __init__(self, frame):
        self.frame = frame

    def sample(self, n, random_state=None, return_y=False):
        X, y = self.frame.drop(columns="y").iloc[:n], self.frame["y"].iloc[:n]
        return (X, y) if return_y else X


def _tstr_evaluate(real, synthetic):
    return metrics.tstr_evaluate(synthetic.drop(columns="y"), synthetic["y"], real.drop(columns="y"), real["y"])


# every public metric taking a real and a synthetic table: (call(real, synthetic), real's name, synthetic's name)
_TABLE_METRICS = {
    "marginal_tvd": (metrics.marginal_tvd, "real", "synthetic"),
    "pairwise_tvd": (metrics.pairwise_tvd, "real", "synthetic"),
    "association_difference": (metrics.association_difference, "real", "synthetic"),
    "association_matrix": (lambda r, s: metrics.association_matrix(s, reference=r), "reference", "data"),
    "column_summary": (metrics.column_summary, "real", "synthetic"),
    "mmd": (metrics.mmd, "real", "synthetic"),
    "detection_auc": (metrics.detection_auc, "real", "synthetic"),
    "distance_to_closest_record": (lambda r, s: metrics.distance_to_closest_record(s, r, r), "train", "synthetic"),
    "tstr_evaluate": (_tstr_evaluate, "X_test", "X_synthetic"),
    "tstr_score": (lambda r, s: metrics.tstr_score(_Sampler(s), r.drop(columns="y"), r["y"]), "X_test",
                   "the synthesizer's sample"),
    "evaluate": (lambda r, s: evaluate(r, s, target="y", schema=SCHEMA), "real", "synthetic"),
}
# the public functions that take no tables (audits of mechanisms, scorer and model factories)
_NO_TABLES = {"AuditResult", "audit_mechanism", "audit_synthesizer", "clopper_pearson", "empirical_epsilon",
              "default_classifier", "default_models", "default_regressor", "tstr_scorer"}


def test_every_public_table_metric_is_checked_for_empty_tables():
    assert set(metrics.__all__) == set(_TABLE_METRICS) | _NO_TABLES


@pytest.mark.parametrize("side", ["real", "synthetic", "both"])
@pytest.mark.parametrize("name", sorted(_TABLE_METRICS))
def test_empty_tables_raise(data, name, side):
    # TVDs gave 0.0 ("perfect match") for two empty tables and 0.5 for one; association
    # differences 0.0: every metric now refuses a table with 0 rows, naming it
    call, real_name, synthetic_name = _TABLE_METRICS[name]
    real, good, _, _ = data
    real, good = real.iloc[:60], good.iloc[:60]
    empty = real.iloc[:0]
    args = {"real": (empty, good), "synthetic": (real, empty), "both": (empty, empty)}[side]
    names = {"real": [real_name], "synthetic": [synthetic_name], "both": [real_name, synthetic_name]}[side]
    with pytest.raises(ValueError, match=f"^({'|'.join(map(re.escape, names))}) has 0 rows"):
        call(*args)


def test_empty_optional_tables_raise(data):
    real, good, test, _ = data
    real, good, test = real.iloc[:60], good.iloc[:60], test.iloc[:60]
    empty = test.iloc[:0]
    with pytest.raises(ValueError, match="test has 0 rows"):
        evaluate(real, good, target="y", test=empty)
    with pytest.raises(ValueError, match="holdout has 0 rows"):
        evaluate(real, good, holdout=empty)
    with pytest.raises(ValueError, match="holdout has 0 rows"):
        metrics.distance_to_closest_record(good, real, empty)
    with pytest.raises(ValueError, match="X_train has 0 rows"):
        metrics.tstr_evaluate(good.drop(columns="y"), good["y"], test.drop(columns="y"), test["y"],
                              X_train=empty.drop(columns="y"), y_train=empty["y"])
    with pytest.raises(ValueError, match="real has 0 rows"):
        metrics.marginal_tvd(np.empty((0, 4)), np.ones((5, 4)))
