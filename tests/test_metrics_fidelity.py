"""Fidelity metrics: marginal TVD, 2-way TVD, associations, MMD, detection AUC, column summaries."""

import warnings

import numpy as np
import pandas as pd
import pytest

from skdpgen import Schema
from skdpgen.metrics import (
    association_difference,
    association_matrix,
    column_summary,
    detection_auc,
    marginal_tvd,
    mmd,
    pairwise_tvd,
)

SCHEMA = {"age": {"type": "integer", "bounds": [0, 100]},
          "income": {"type": "continuous", "bounds": [0, 100_000]},
          "colour": {"type": "categorical", "categories": ["red", "green", "blue"], "nullable": True}}


def table(n, rng, shift=0.0, dependent=True):
    age = np.clip(rng.normal(40 + shift, 10, n), 0, 100).round()
    income = np.exp(rng.normal(10, 0.5, n)) * (1 + shift / 10)
    noise = rng.normal(0, 5, n)
    key = age + noise if dependent else rng.normal(40, 11, n)
    colour = np.where(key > 45, "red", np.where(key > 35, "green", "blue")).astype(object)
    colour[rng.random(n) < 0.05] = None
    return pd.DataFrame({"age": age.astype(int), "income": income, "colour": colour})


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(0)
    return table(3000, rng), table(3000, rng), table(3000, rng, shift=15.0), table(3000, rng, dependent=False)


def test_marginal_tvd_zero_for_identical_and_in_unit_interval(tables):
    real, same, shifted, _ = tables
    assert np.allclose(marginal_tvd(real, real, SCHEMA), 0.0)
    tv = marginal_tvd(real, shifted, SCHEMA)
    assert list(tv.index) == ["age", "income", "colour"]
    assert ((tv >= 0) & (tv <= 1)).all()
    assert tv["age"] > 0.4 and marginal_tvd(real, same, SCHEMA)["age"] < 0.05


def test_marginal_tvd_exact_value_categorical():
    real = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 50})
    syn = pd.DataFrame({"c": ["a"] * 80 + ["b"] * 20})
    assert marginal_tvd(real, syn)["c"] == pytest.approx(0.3)
    # unknown synthetic values and missing values have their own bins
    syn2 = pd.DataFrame({"c": ["a"] * 50 + ["zzz"] * 25 + [None] * 25})
    assert marginal_tvd(real, syn2)["c"] == pytest.approx(0.5)


def test_schema_bins_use_public_bounds_not_data():
    real = pd.DataFrame({"x": np.linspace(0, 1, 100)})
    syn = pd.DataFrame({"x": np.linspace(0, 1, 100) + 0.02})
    # with bounds [0, 1000] everything falls into the first bin: identical marginals
    assert marginal_tvd(real, syn, {"x": {"type": "continuous", "bounds": [0, 1000], "scale": "linear"}})["x"] == 0
    assert marginal_tvd(real, syn)["x"] > 0  # real quantile bins see the shift


def test_log_scale_bins_separate_zero_from_small_amounts():
    real = pd.DataFrame({"gain": np.r_[np.zeros(90), np.full(10, 5000.0)]})
    syn = pd.DataFrame({"gain": np.r_[np.full(90, 2500.0), np.full(10, 5000.0)]})  # bin midpoints
    spec = {"gain": {"type": "integer", "bounds": [0, 99_999]}}  # auto -> log scale
    assert marginal_tvd(real, syn, spec)["gain"] == pytest.approx(0.9)


def test_pairwise_tvd_sees_dependence_that_marginals_miss(tables):
    real, same, _, independent = tables
    one_same, one_ind = marginal_tvd(real, same, SCHEMA).mean(), marginal_tvd(real, independent, SCHEMA).mean()
    assert abs(one_same - one_ind) < 0.05
    two = pairwise_tvd(real, independent, SCHEMA)
    assert list(two.columns) == ["column_a", "column_b", "tvd"] and len(two) == 3
    pair = two.set_index(["column_a", "column_b"])["tvd"]
    pair_same = pairwise_tvd(real, same, SCHEMA).set_index(["column_a", "column_b"])["tvd"]
    assert pair[("age", "colour")] > pair_same[("age", "colour")] + 0.1


def test_association_matrix_kinds_and_difference(tables):
    real, same, _, independent = tables
    a = association_matrix(real, SCHEMA)
    assert a.shape == (3, 3) and np.allclose(np.diag(a), 1.0) and np.allclose(a, a.T)
    assert a.loc["age", "colour"] > 0.5  # correlation ratio
    d_ind = association_difference(real, independent, SCHEMA)
    d_same = association_difference(real, same, SCHEMA)
    assert d_ind.loc["age", "colour"] > 0.4 > d_same.loc["age", "colour"]
    # Cramer's V of a perfect association is 1
    x = pd.DataFrame({"a": list("xyz") * 30, "b": list("pqr") * 30})
    assert association_matrix(x).loc["a", "b"] == pytest.approx(1.0)


def test_mmd_orders_distances_and_is_near_zero_for_same_distribution(tables):
    real, same, shifted, _ = tables
    m_same = mmd(real, same, SCHEMA, max_rows=800)
    m_shift = mmd(real, shifted, SCHEMA, max_rows=800)
    assert abs(m_same) < 0.01 < m_shift
    with pytest.raises(ValueError, match="length_scale"):
        mmd(real, same, SCHEMA, length_scale=0)


def test_detection_auc(tables):
    real, same, shifted, _ = tables
    assert 0.5 <= detection_auc(real, same, SCHEMA, max_rows=1500) < 0.6
    assert detection_auc(real, shifted, SCHEMA, max_rows=1500) > 0.8
    # binned features ignore decoding artefacts inside a bin (an independent sample decoded with the
    # artefact: shifting the REAL rows would give binned copies of them, which the test now flags)
    mid = same.assign(age=same["age"] + 0.3)
    assert detection_auc(real, mid, SCHEMA, max_rows=1500) > 0.95
    assert detection_auc(real, mid, SCHEMA, max_rows=1500, binned=True) < 0.6


def mixture(n, rng):
    """A two-component Gaussian mixture table (two numeric columns, one categorical)."""
    comp = rng.random(n) < 0.4
    x = np.where(comp, rng.normal(-2, 1, n), rng.normal(2, 0.7, n))
    y = np.where(comp, rng.normal(1, 0.5, n), rng.normal(-1, 1.2, n))
    c = np.where(comp, "a", np.where(rng.random(n) < 0.5, "b", "c")).astype(object)
    return pd.DataFrame({"x": x, "y": y, "c": c})


def test_detection_auc_does_not_reward_copies():
    # copying the real rows put each row in both classes, so the out-of-fold classifier predicted
    # the wrong class on them: the raw AUC fell to about 0.15 (copies), 0.3 (half copies), below the
    # 0.5 of an independent sample, and "lower is better" ranked memorisation above a perfect fit
    rng = np.random.default_rng(0)
    real, fresh = mixture(400, rng), mixture(400, rng)
    copy = real.copy()
    half = pd.concat([real.iloc[:200], fresh.iloc[:200]], ignore_index=True)
    bootstrap = real.sample(400, replace=True, random_state=1).reset_index(drop=True)
    near = real.assign(x=real["x"] + rng.normal(0, 0.01, 400), y=real["y"] + rng.normal(0, 0.01, 400))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an independent sample raises no copy warning
        auc_fresh = detection_auc(real, fresh)
    assert 0.5 <= auc_fresh < 0.6
    for synthetic in (copy, half, bootstrap, near):
        with pytest.warns(UserWarning, match="copies or near-copies of real rows"):
            auc = detection_auc(real, synthetic)
        assert auc > auc_fresh + 0.1
    with pytest.warns(UserWarning, match="copies"):
        raw = detection_auc(real, copy, symmetric=False)
    assert raw < 0.3
    with pytest.warns(UserWarning, match="copies"):
        assert detection_auc(real, copy) == pytest.approx(1.0 - raw)
    # the symmetrised value is in [0.5, 1] and equals the raw one above 0.5
    shifted = fresh.assign(x=fresh["x"] + 1.0)
    assert detection_auc(real, shifted) == detection_auc(real, shifted, symmetric=False) > 0.6


def test_column_summary(tables):
    real, _, shifted, _ = tables
    s = column_summary(real, shifted, Schema(SCHEMA))
    assert list(s["column"]) == ["age", "income", "colour"]
    row = s.set_index("column")
    assert row.loc["age", "mean_synthetic"] - row.loc["age", "mean_real"] == pytest.approx(15, abs=1.0)
    assert 0 < row.loc["age", "ks"] <= 1
    assert row.loc["colour", "n_categories_real"] == 3
    assert row.loc["colour", "missing_real"] == pytest.approx(0.05, abs=0.02)


def test_arrays_and_errors():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    assert marginal_tvd(X, X).shape == (3,)
    with pytest.raises(ValueError, match="lacks columns"):
        marginal_tvd(pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"b": [1, 2]}))
    with pytest.raises(ValueError, match="n_bins"):
        marginal_tvd(X, X, n_bins=0)


def test_empty_tables_are_refused_not_a_perfect_match():
    # two empty tables gave TVD 0 ("perfect match"), one empty side 0.5, and an empty real table an
    # association difference of 0; every metric now names the empty table
    rng = np.random.default_rng(2)
    real = mixture(50, rng)
    empty = real.iloc[:0]
    for f in (marginal_tvd, pairwise_tvd, association_difference, column_summary, mmd, detection_auc):
        with pytest.raises(ValueError, match="real has 0 rows"):
            f(empty, empty)
        with pytest.raises(ValueError, match="real has 0 rows"):
            f(empty, real)
        with pytest.raises(ValueError, match="synthetic has 0 rows"):
            f(real, empty)
    with pytest.raises(ValueError, match="synthetic has 0 rows"):
        marginal_tvd(np.ones((5, 2)), np.empty((0, 2)))
    with pytest.raises(ValueError, match="data has 0 rows"):
        association_matrix(empty)
    with pytest.raises(ValueError, match="reference has 0 rows"):
        association_matrix(real, reference=empty)
