"""skdpgen.metrics.evaluate: the tidy report."""

import numpy as np
import pandas as pd
import pytest

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
