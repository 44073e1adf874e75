"""Tests of skdpgen.schema: declaration, (de)serialisation, inference and DP estimation."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from skdpgen.exceptions import PrivacyLeakWarning
from skdpgen.privacy import PrivacyLedger, gdp_epsilon, sparse_histogram_threshold
from skdpgen.schema import (
    KINDS,
    ColumnSpec,
    Schema,
    as_dataframe,
    estimate_schema,
    kind_from_dtype,
    numeric_grid,
)

ADULT_LIKE = {
    "age": {"type": "integer", "bounds": [17, 90]},
    "hours": {"type": "continuous", "bounds": [1, 99]},
    "sex": {"type": "categorical", "categories": ["Female", "Male"]},
    "workclass": {"type": "categorical", "categories": ["Private", "Self-emp", "State-gov"],
                  "nullable": True},
    "married": {"type": "boolean"},
    "income": {"type": "categorical", "categories": ["<=50K", ">50K"], "unknown": "other"},
    "__target__": "income",
}


# ----------------------------------------------------------------------------- ColumnSpec
def test_kinds():
    assert KINDS == ("continuous", "integer", "categorical", "boolean")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kind="real", bounds=(0, 1)), "'c'.*unknown type 'real'"),
        (dict(kind="continuous"), "'c'.*needs bounds"),
        (dict(kind="integer", bounds=(5, 5)), "'c'.*lo < hi"),
        (dict(kind="continuous", bounds=(3, 1)), "'c'.*lo < hi"),
        (dict(kind="continuous", bounds=(0, np.inf)), "'c'.*finite"),
        (dict(kind="continuous", bounds=(np.nan, 1)), "'c'.*finite"),
        (dict(kind="continuous", bounds=("a", 1)), "'c'.*two numbers"),
        (dict(kind="continuous", bounds=(0, 1), categories=("a",)), "'c'.*not categories"),
        (dict(kind="continuous", bounds=(0, 1), unknown="other"), "'c'.*unknown='other'"),
        (dict(kind="categorical"), "'c'.*needs its categories"),
        (dict(kind="categorical", categories=()), "'c'.*must not be empty"),
        (dict(kind="categorical", categories=("a", "b", "a")), "'c'.*duplicate categories"),
        (dict(kind="categorical", categories=("a", None)), "'c'.*missing values.*nullable"),
        (dict(kind="categorical", categories=("a",), bounds=(0, 1)), "'c'.*not bounds"),
        (dict(kind="categorical", categories=("a",), unknown="ignore"), "'c'.*'error' or 'other'"),
        (dict(kind="continuous", bounds=(0, 1), missing="drop"), "'c'.*'error' or 'impute'"),
        (dict(kind="continuous", bounds=(0, 1), nullable=True, missing="impute"), "'c'.*non-nullable"),
        (dict(kind="categorical", categories=("a",), missing="impute"), "'c'.*needs a fill_value"),
        (dict(kind="categorical", categories=("a",), missing="impute", fill_value="b"), "'c'.*not one of"),
        (dict(kind="categorical", categories=(0, 1), missing="impute", fill_value=True), "'c'.*not one of"),
        (dict(kind="boolean", missing="impute", fill_value=1), "'c'.*not one of"),
        (dict(kind="boolean", nullable=True, missing="impute", fill_value=True), "'c'.*non-nullable"),
        (dict(kind="boolean", fill_value=True), "'c'.*fill_value.*missing='impute'"),
        (dict(kind="continuous", bounds=(0, 1), fill_value=0.5), "'c'.*fill_value.*missing='impute'"),
        (dict(kind="continuous", bounds=(0, 1), missing="impute", fill_value=2), "'c'.*within the bounds"),
        (dict(kind="continuous", bounds=(0, 1), missing="impute", fill_value="a"), "'c'.*number"),
        (dict(kind="integer", bounds=(0, 9), missing="impute", fill_value=2.5), "'c'.*must be an integer"),
        (dict(kind="continuous", bounds=(-1e308, 1e308)), "'c'.*too far apart.*overflows"),
        (dict(kind="integer", bounds=(-1.7e308, 1e308)), "'c'.*too far apart"),
        (dict(kind="boolean", categories=("no", "yes")), "'c'.*boolean.*False, True"),
        (dict(kind="boolean", categories=(0, 1)), "'c'.*boolean.*False, True"),
    ],
)
def test_columnspec_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ColumnSpec("c", **kwargs)


def test_columnspec_normalises():
    spec = ColumnSpec("age", "integer", bounds=(np.int64(17), np.int64(90)))
    assert spec.bounds == (17.0, 90.0) and type(spec.bounds[0]) is float
    cat = ColumnSpec("c", "categorical", categories=np.array([3, 1, 2]))
    assert cat.categories == (3, 1, 2) and all(type(c) is int for c in cat.categories)
    assert ColumnSpec("b", "boolean").categories == (False, True)
    assert ColumnSpec("b", "boolean", categories=[True, False]).categories == (False, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.kind = "continuous"


def test_columnspec_missing_impute_round_trip_and_fill_value():
    d = {"type": "integer", "bounds": [0, 9], "missing": "impute"}
    spec = ColumnSpec.from_dict("k", d)
    assert spec.missing == "impute" and spec.to_dict() == d
    assert spec.fill_value == 5.0  # the public midpoint 4.5, rounded half up
    assert ColumnSpec("x", "continuous", bounds=(-1, 4), missing="impute").fill_value == 1.5
    assert ColumnSpec("x", "continuous", bounds=(-1, 4)).fill_value is None
    assert "missing->imputed" in spec.describe()
    s = Schema({"k": d})
    assert Schema.from_dict(json.loads(s.to_json())) == s


def test_columnspec_fill_value_round_trip():
    # a declared fill value: kept in the dict form; the default midpoint of a numeric column is implied
    num = {"type": "continuous", "bounds": [0, 10], "missing": "impute", "fill_value": 2.5}
    assert ColumnSpec.from_dict("x", num).fill_value == 2.5 and ColumnSpec.from_dict("x", num).to_dict() == num
    assert ColumnSpec("x", "continuous", bounds=(0, 10), missing="impute", fill_value=5) == \
        ColumnSpec("x", "continuous", bounds=(0, 10), missing="impute")  # 5 is the default
    ints = {"type": "integer", "bounds": [0, 9], "missing": "impute", "fill_value": 0}
    assert ColumnSpec.from_dict("k", ints).to_dict() == ints and type(ints["fill_value"]) is int
    for d in ({"type": "boolean", "missing": "impute", "fill_value": True},
              {"type": "categorical", "categories": ["a", "b"], "missing": "impute", "fill_value": "b"},
              {"type": "categorical", "categories": [0, 1, 2], "unknown": "other", "missing": "impute",
               "fill_value": 2}):
        spec = ColumnSpec.from_dict("c", d)
        assert spec.to_dict() == d and "missing->imputed as" in spec.describe()
        s = Schema({"c": d})
        assert Schema.from_dict(json.loads(s.to_json())) == s
    # numpy scalars are stored as the category itself
    spec = ColumnSpec("b", "boolean", missing="impute", fill_value=np.bool_(False))
    assert spec.fill_value is False


def test_integer_bounds_beyond_float64_exact_range_warn():
    with pytest.warns(UserWarning, match="'k'.*beyond 2\\*\\*53.*round-trip exactly"):
        ColumnSpec("k", "integer", bounds=(2**53, 2**53 + 10))
    with pytest.warns(UserWarning, match="'k'.*beyond 2\\*\\*53"):
        ColumnSpec("k", "integer", bounds=(-(2**52) - 1, 2**52 + 1))  # width above 2**53
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ColumnSpec("k", "integer", bounds=(-(2**52), 2**52))
        ColumnSpec("k", "integer", bounds=(0, 2**53))
        ColumnSpec("x", "continuous", bounds=(-1e300, 1e300))


def test_bounds_whose_width_overflows_are_refused():
    with pytest.raises(ValueError, match="'x'.*too far apart: hi - lo overflows"):
        Schema({"x": {"type": "continuous", "bounds": [-1e308, 1e308]}})
    assert ColumnSpec("x", "continuous", bounds=(-8e307, 8e307)).bounds == (-8e307, 8e307)


def test_columnspec_dict_round_trip():
    for name, d in ADULT_LIKE.items():
        if name == "__target__":
            continue
        spec = ColumnSpec.from_dict(name, d)
        assert spec.to_dict() == d
        assert ColumnSpec.from_dict(name, spec.to_dict()) == spec
    with pytest.raises(ValueError, match="'x'.*unknown keys"):
        ColumnSpec.from_dict("x", {"type": "continuous", "bounds": [0, 1], "lower": 0})
    with pytest.raises(ValueError, match="'x'.*missing 'type'"):
        ColumnSpec.from_dict("x", {"bounds": [0, 1]})


# ----------------------------------------------------------------------------- Schema
def test_schema_from_dict_and_protocol():
    s = Schema.from_dict(ADULT_LIKE)
    assert list(s) == ["age", "hours", "sex", "workclass", "married", "income"]
    assert len(s) == 6 and "age" in s and "nope" not in s
    assert s.target == "income" and s.target_spec.name == "income"
    assert s.feature_names == ["age", "hours", "sex", "workclass", "married"]
    assert s["age"].bounds == (17.0, 90.0)
    assert isinstance(s.columns, dict) and list(s.columns) == list(s)
    with pytest.raises(KeyError, match="nope"):
        s["nope"]
    text = repr(s)
    assert "age" in text and "integer [17, 90]" in text and "target='income'" in text


def test_schema_round_trip_dict_and_json(tmp_path):
    s = Schema.from_dict(ADULT_LIKE)
    d = s.to_dict()
    assert d == ADULT_LIKE
    assert Schema.from_dict(json.loads(json.dumps(d))) == s
    path = tmp_path / "schema.json"
    s.to_json(path)
    assert Schema.from_json(path) == s
    assert Schema.coerce(path) == s and Schema.coerce(str(path)) == s
    assert Schema.coerce(d) == s and Schema.coerce(s) is s


def test_schema_round_trip_numpy_scalars():
    s = Schema({"a": ColumnSpec("a", "integer", bounds=(np.int32(0), np.int64(9))),
                "b": ColumnSpec("b", "categorical", categories=list(np.array([1.5, 2.5]))),
                "c": ColumnSpec("c", "categorical", categories=list(np.array(["u", "v"])))})
    text = s.to_json()
    assert json.loads(text)["a"] == {"type": "integer", "bounds": [0, 9]}
    assert Schema.from_dict(json.loads(text)) == s


def test_schema_target_and_errors():
    cols = {k: v for k, v in ADULT_LIKE.items() if k != "__target__"}
    assert Schema(cols, target="income") == Schema.from_dict(ADULT_LIKE)
    assert Schema(cols) != Schema(cols, target="income")
    with pytest.raises(ValueError, match="target 'y' is not one of the columns"):
        Schema(cols, target="y")
    with pytest.raises(ValueError, match="conflicting targets"):
        Schema(ADULT_LIKE, target="sex")
    with pytest.raises(ValueError, match="duplicate column 'a'"):
        Schema([ColumnSpec("a", "boolean"), ColumnSpec("a", "boolean")])
    with pytest.raises(ValueError, match="'a'.*named 'b'"):
        Schema({"a": ColumnSpec("b", "boolean")})
    with pytest.raises(ValueError, match="'hours'.*lo < hi"):
        Schema({"hours": {"type": "continuous", "bounds": [5, 1]}})
    with pytest.raises(TypeError, match="schema must be"):
        Schema.coerce(42)
    with pytest.raises(TypeError, match="mapping or a sequence"):
        Schema(42)


def test_schema_subset():
    s = Schema.from_dict(ADULT_LIKE)
    sub = s.subset(["sex", "age"])
    assert list(sub) == ["sex", "age"] and sub.target is None
    assert s.subset(["income", "age"]).target == "income"
    with pytest.raises(KeyError, match="zzz"):
        s.subset(["age", "zzz"])


# ----------------------------------------------------------------------------- kinds / infer
@pytest.mark.parametrize(
    "series, kind",
    [
        (pd.Series([True, False]), "boolean"),
        (pd.Series([True, None], dtype="boolean"), "boolean"),
        (pd.Series([1, 2]), "integer"),
        (pd.Series([1, None], dtype="Int64"), "integer"),
        (pd.Series([1.0, 2.5]), "continuous"),
        (pd.Series(["a", "b"]), "categorical"),
        (pd.Series(["a", "b"], dtype=object), "categorical"),
        (pd.Series(["a", "b"], dtype="category"), "categorical"),
        (pd.Series([1, 2], dtype="category"), "categorical"),
    ],
)
def test_kind_from_dtype(series, kind):
    assert kind_from_dtype(series.dtype) == kind


def test_kind_from_dtype_rejects_datetimes():
    with pytest.raises(TypeError, match="'when'.*cannot model"):
        kind_from_dtype(pd.Series(pd.to_datetime(["2020-01-01"])).dtype, "when")


def test_as_dataframe_names_arrays_and_adds_target():
    df = as_dataframe(np.zeros((3, 2)), y=np.array([0, 1, 0]))
    assert list(df.columns) == ["x0", "x1", "target"]
    with pytest.raises(ValueError, match="column named 'x0', the name given to y; pass another target_name"):
        as_dataframe(np.zeros((3, 2)), y=np.array([0, 1, 0]), target_name="x0")
    with pytest.raises(ValueError, match="1-D with 3 entries"):
        as_dataframe(np.zeros((3, 2)), y=np.zeros(4))


def test_infer_warns_and_reads_the_data():
    df = pd.DataFrame({"age": [20, 35, 71], "w": [1.5, np.nan, 3.0], "c": ["b", "a", None],
                       "f": [True, False, True]})
    for _ in range(2):  # every time
        with pytest.warns(PrivacyLeakWarning, match="is a privacy leak"):
            s = Schema.infer(df, y=pd.Series([1, 0, 1]))
    assert s["age"] == ColumnSpec("age", "integer", bounds=(20, 71))
    assert s["w"] == ColumnSpec("w", "continuous", bounds=(1.5, 3.0), nullable=True)
    assert s["c"] == ColumnSpec("c", "categorical", categories=("a", "b"), nullable=True)
    assert s["f"].kind == "boolean" and not s["f"].nullable
    assert s.target == "target" and s["target"].categories == (0, 1)
    with pytest.warns(PrivacyLeakWarning):
        arr = Schema.infer(np.array([[1, 2.0], [3, 2.0]]))
    assert list(arr) == ["x0", "x1"] and {arr[c].kind for c in arr} == {"continuous"}
    assert arr["x1"].bounds == (2.0, 3.0)  # widened: lo < hi


# ----------------------------------------------------------------------------- DP estimation
N_ROWS = 20_000
GRID = numeric_grid()


def _grid_bin(v):
    return np.searchsorted(GRID, v, side="right")


def _synthetic(seed=0):
    rng = np.random.default_rng(seed)
    n = N_ROWS
    df = pd.DataFrame({
        "age": rng.integers(17, 91, n),
        "gain": rng.lognormal(3.0, 1.0, n),
        "balance": rng.normal(0.0, 10.0, n),
        "sex": rng.choice(["Female", "Male"], n),
        "workclass": pd.Series(rng.choice(["Private", "Self-emp", "State-gov"], n, p=[0.7, 0.2, 0.1]),
                               dtype=object),
        "married": rng.random(n) < 0.4,
    })
    df.loc[: n // 20 - 1, "workclass"] = None  # 5% missing
    df.loc[n - 1, "workclass"] = "Rare"  # held by one row
    y = rng.choice([0, 1], n, p=[0.75, 0.25])
    return df, y


@pytest.fixture(scope="module")
def estimated():
    df, y = _synthetic()
    state = np.random.get_state()  # noqa: NPY002 (checking that the global RNG is untouched)
    schema, releases = estimate_schema(df, y, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(7),
                                       owner="test")
    global_unchanged = all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
                           for a, b in zip(state, np.random.get_state(), strict=True))  # noqa: NPY002
    return df, y, schema, releases, global_unchanged


def test_numeric_grid_is_fixed():
    g = numeric_grid()
    assert g.size == 4867 and g[2433] == 0.0 and np.all(np.diff(g) > 0)
    assert g[-1] == 1e300 and g[2434] == pytest.approx(1e-4)
    assert math.isfinite(g[-1] - g[0])  # any bounds read from the grid have a finite width
    np.testing.assert_allclose(g[-2] * 10 ** (1 / 8), g[-1])
    np.testing.assert_array_equal(g, -g[::-1])


@pytest.mark.parametrize("scale", [1e12, 1e17, 1e250])
def test_estimate_bounds_of_large_numbers_are_not_cut(scale):
    # the grid used to stop at 1e10: integers up to 1e12 got bounds [3.2e8, 1e10], 100x too small
    rng = np.random.default_rng(0)
    x = rng.uniform(0.01, 1.0, 5000) * scale
    X = pd.DataFrame({"x": x, "k": np.round(x / scale * 1e12).astype(np.int64)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schema, _ = estimate_schema(X, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))
    for name, top in [("x", scale), ("k", 1e12)]:
        lo, hi = schema[name].bounds
        assert top <= hi <= top * 10 ** (2 / 8), (name, hi)  # covers the data, within two grid steps
        assert lo >= top * 1e-3 / 10 ** (2 / 8), (name, lo)
    assert schema["k"].kind == "integer"


def test_estimate_warns_when_values_lie_beyond_the_grid():
    X = pd.DataFrame({"x": np.full(3000, 1e305), "y": np.random.default_rng(0).normal(size=3000)})
    with pytest.warns(UserWarning, match=r"\['x'\] may hold values beyond \+-1e300.*Declare the bounds"):
        schema, _ = estimate_schema(X, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))
    lo, hi = schema["x"].bounds
    assert hi == 1e300 and lo < hi and math.isfinite(hi - lo)


def test_estimate_numeric_core_cut_off_rejects_noise_in_the_many_empty_bins():
    # 50 columns, 4868 bins each: pure noise passing the old per-bin cut-off (probability about
    # 1e-6 per bin, so about 0.2 per release here) made a spurious run whose mass (about 5 noise
    # stds, 1.8% of the rows) set a bound far from the data; the core cut-off is Bonferroni over the bins
    rng = np.random.default_rng(1)
    X = pd.DataFrame({f"c{j}": rng.normal(100.0, 1.0, 2000) for j in range(50)})
    for seed in range(6):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a (rare) false imputation warning is not tested here
            schema, _ = estimate_schema(X, mu=1.0, threshold_delta=0.0, rng=np.random.default_rng(seed))
        for name in X:
            lo, hi = schema[name].bounds
            assert 10.0 <= lo < hi <= 1000.0, (seed, name, lo, hi)


def test_estimate_numeric_bounds(estimated):
    df, _, schema, _, _ = estimated
    for name in ["age", "gain", "balance"]:
        lo, hi = schema[name].bounds
        x = df[name].to_numpy(dtype=float)
        q0, q1 = np.quantile(x, [0.001, 0.999])
        assert np.mean((x >= lo) & (x <= hi)) >= 0.99, name
        # within one grid step of the bins holding the quantiles
        assert abs(_grid_bin(lo) - _grid_bin(q0)) <= 1, (name, lo, q0)
        assert abs(_grid_bin(hi) - 1 - _grid_bin(q1)) <= 1, (name, hi, q1)
        assert not schema[name].nullable
    lo, hi = schema["age"].bounds
    assert float(lo).is_integer() and float(hi).is_integer() and lo <= 17 and hi >= 90
    assert schema["age"].kind == "integer" and schema["gain"].kind == "continuous"


def test_estimate_categories(estimated):
    _, _, schema, _, _ = estimated
    wc = schema["workclass"]
    assert wc.categories == ("Private", "Self-emp", "State-gov")  # sorted, "Rare" (1 row) dropped
    assert wc.nullable and wc.unknown == "other"
    assert schema["sex"].categories == ("Female", "Male") and not schema["sex"].nullable
    assert schema["married"].kind == "boolean" and schema["married"].unknown == "error"
    assert schema.target == "target" and schema["target"].kind == "categorical"
    assert schema["target"].categories == (0, 1)


def test_estimate_release_recorded(estimated):
    df, _, _, releases, _ = estimated
    (rel,) = releases
    d = df.shape[1] + 1  # the target counts
    assert rel.name == "schema" and rel.owner == "test"
    assert rel.mechanism == "gaussian_sparse_histogram"
    assert rel.mu == 1.0 and rel.sensitivity == pytest.approx(math.sqrt(d))
    assert rel.noise_std == pytest.approx(math.sqrt(d) / 1.0)
    assert rel.extra_delta == 1e-6 and rel.delta == pytest.approx(2e-6)
    assert rel.epsilon == pytest.approx(gdp_epsilon(1.0, 1e-6))
    ledger = PrivacyLedger()
    ledger.record(*releases)
    assert ledger.spent()[0] == pytest.approx(rel.epsilon)


def test_estimate_reproducible_and_no_global_rng(estimated):
    df, y, schema, releases, global_unchanged = estimated
    assert global_unchanged
    again, rel2 = estimate_schema(df, y, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(7),
                                  owner="test")
    assert again == schema and rel2[0].noise_std == releases[0].noise_std
    # the noise does come from rng: a rng drawn from changes what is released
    rng = np.random.default_rng(7)
    before = rng.bit_generator.state
    estimate_schema(df[["balance"]], mu=1.0, threshold_delta=1e-6, rng=rng)
    assert rng.bit_generator.state != before


def test_estimate_rare_category_dropped_with_high_probability():
    # the threshold tau keeps a count-1 category with probability <= threshold_delta / k
    s = math.sqrt(3) / 1.0
    tau = sparse_histogram_threshold(s, 1e-6, max_new_keys=2)
    assert tau > 1 + 4.5 * s
    df = pd.DataFrame({"a": ["u"] * 300 + ["solo"], "b": ["v"] * 301})
    for seed in range(5):
        schema, _ = estimate_schema(df, np.zeros(301, dtype=int), mu=1.0, threshold_delta=1e-6,
                                    rng=np.random.default_rng(seed),
                                    candidates={"target": [0, 1]})
        assert schema["a"].categories == ("u",)


def test_estimate_candidates():
    df, y = _synthetic(1)
    df = df.assign(code=np.random.default_rng(1).integers(0, 3, len(df)))
    schema, (rel,) = estimate_schema(
        df[["sex", "code", "married"]], y, mu=2.0, threshold_delta=1e-6, rng=np.random.default_rng(0),
        candidates={"sex": ["Male", "Female", "Other"], "code": [0, 1, 2, 3], "target": [0, 1]})
    assert schema["sex"].categories == ("Male", "Female", "Other")  # kept as declared, "Other" too
    assert schema["sex"].unknown == "error"
    assert schema["code"].kind == "categorical" and schema["code"].categories == (0, 1, 2, 3)
    # no thresholded column: plain Gaussian release, no extra delta
    assert rel.mechanism == "gaussian" and rel.extra_delta == 0.0
    assert rel.sensitivity == pytest.approx(2.0) and rel.noise_std == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not in the data"):
        estimate_schema(df[["sex"]], mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0),
                        candidates={"zzz": [1]})


def test_estimate_numeric_only_allows_zero_threshold_delta():
    X = np.random.default_rng(0).normal(5.0, 1.0, size=(5000, 2))
    schema, (rel,) = estimate_schema(X, mu=1.0, threshold_delta=0.0, rng=np.random.default_rng(0))
    assert list(schema) == ["x0", "x1"] and schema.target is None
    assert all(schema[c].kind == "continuous" for c in schema)
    assert rel.extra_delta == 0.0 and rel.mechanism == "gaussian"
    with pytest.raises(ValueError, match="threshold_delta must be > 0"):
        estimate_schema(pd.DataFrame({"c": ["a"] * 10}), mu=1.0, threshold_delta=0.0,
                        rng=np.random.default_rng(0))


def test_estimate_nullable_numeric():
    rng = np.random.default_rng(3)
    x = rng.normal(50, 5, 5000)
    x[:500] = np.nan
    X = pd.DataFrame({"x": x, "k": pd.array(rng.integers(0, 5, 5000), dtype="Int64")})
    schema, _ = estimate_schema(X, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))
    assert schema["x"].nullable and not schema["k"].nullable
    assert schema["k"].kind == "integer"
    assert schema["x"].missing == "error" and schema["k"].missing == "impute"


def test_estimate_imputes_rare_missing_numeric_values_and_warns_once():
    # one missing value does not make the column nullable (too few for the noisy count): the fit must not
    # depend on that row, so the column imputes the public midpoint of its bounds; the warning names the
    # columns, never how many values are missing
    rng = np.random.default_rng(4)
    n = 5000
    X = pd.DataFrame({"a": rng.uniform(0, 10, n), "k": pd.array(rng.integers(0, 5, n), dtype="Int64"),
                      "b": rng.uniform(0, 1, n), "c": rng.choice(["u", "v"], n)})
    X.loc[[3, 4, 6, 7, 8, 10, 11, 12], "a"] = np.nan  # 8 missing: below tau (about 10.5), above the cut (5.4)
    X.loc[[5, 9, 13, 14, 15, 16, 17, 18], "k"] = pd.NA
    with pytest.warns(UserWarning, match=r"\['a', 'k'\] may have missing values.*nullable=True") as record:
        schema, _ = estimate_schema(X, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))
    assert len(record) == 1
    assert not any(ch.isdigit() for ch in str(record[0].message))
    assert not schema["a"].nullable and schema["a"].missing == "impute"
    lo, hi = schema["a"].bounds
    assert schema["a"].fill_value == (lo + hi) / 2
    # the flag is set on every numeric column estimated non-nullable (a function of the noisy counts only)
    assert schema["b"].missing == "impute" and schema["c"].missing == "error"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no missing value in the data: (here) no warning
        estimate_schema(X.dropna(), mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))


def test_imputation_warning_reads_only_the_noisy_counts(monkeypatch):
    """Whether the warning appears is post-processing of the release: with the noise fixed, one
    row with a missing value more or less does not change it (the exact count is private)."""
    from skdpgen import schema as schema_module

    rng = np.random.default_rng(5)
    X = pd.DataFrame({"a": rng.uniform(0, 10, 3000), "b": rng.uniform(0, 1, 3000)})
    X1 = X.copy()
    X1.loc[0, "a"] = np.nan
    real = schema_module.gaussian_mechanism
    monkeypatch.setattr(schema_module, "gaussian_mechanism", lambda v, s, r: real(v, 0.0, r) + 0.0 * s)
    for data in (X, X1):  # noise 0 here, so the noisy missing count is the exact 0 or 1: below 2 stds
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            estimate_schema(data, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))


def test_estimate_fails_clearly_when_nothing_survives():
    df = pd.DataFrame({"c": ["a", "b", "c", "d"]})
    with pytest.raises(ValueError, match="'c'.*declare.*larger epsilon, or a larger schema_share"):
        estimate_schema(df, mu=0.5, threshold_delta=1e-6, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="'x'.*bounds.*larger epsilon, or a larger schema_share"):
        estimate_schema(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), mu=0.5, threshold_delta=1e-6,
                        rng=np.random.default_rng(0))


def test_estimate_argument_checks():
    df = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        estimate_schema(df, mu=1.0, threshold_delta=1e-6, rng=0)
    with pytest.raises(ValueError, match="mu must be > 0"):
        estimate_schema(df, mu=0.0, threshold_delta=1e-6, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="threshold_delta"):
        estimate_schema(df, mu=1.0, threshold_delta=1.5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="0 rows"):
        estimate_schema(df.iloc[:0], mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))


def test_estimate_without_privacy_is_exact():
    df = pd.DataFrame({"c": ["a", "b", "b"], "x": [1.0, 2.0, 3.0]})
    schema, (rel,) = estimate_schema(df, mu=math.inf, threshold_delta=1e-6, rng=np.random.default_rng(0))
    assert schema["c"].categories == ("a", "b")
    assert rel.epsilon == math.inf and rel.noise_std == 0.0


def test_estimate_target_only_from_empty_frame():
    # a frame with no columns plus y: only the target is estimated (d = 1)
    X = pd.DataFrame(index=range(1000))
    y = pd.Series(np.repeat(["no", "yes"], 500)).astype("category")
    schema, (rel,) = estimate_schema(X, y, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0),
                                     target_name="label")
    assert list(schema) == ["label"] and schema.target == "label"
    assert schema["label"].categories == ("no", "yes")
    assert rel.sensitivity == pytest.approx(1.0)


def test_estimate_does_not_warn():
    df, y = _synthetic(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimate_schema(df.iloc[:2000], y[:2000], mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))


# ----------------------------------------------------------------------------- imputation warning
def test_imputation_warning_has_few_false_alarms_over_many_complete_columns():
    # the old cut-off (2 noise stds per column) named about 2.3% of complete columns: 8 of these 200
    rng = np.random.default_rng(0)
    X = pd.DataFrame({f"c{j}": rng.normal(0.0, 1.0, 5000) for j in range(200)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schema, _ = estimate_schema(X, mu=3.0, threshold_delta=1e-6, rng=np.random.default_rng(0))
    assert all(schema[c].missing == "impute" and not schema[c].nullable for c in X)


def test_imputation_warning_names_a_column_with_missing_values_among_many():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({f"c{j}": rng.normal(0.0, 1.0, 5000) for j in range(200)})
    # 21 missing, noise std 4.7: the warning shows when the noisy count lies between the cut (3.9 noise
    # stds, 18.3) and tau (23.4, above which the column is nullable): the seed gives such a draw
    X.loc[: 20, "c7"] = np.nan
    with pytest.warns(UserWarning, match=r"the column\(s\) \['c7'\] may have missing values") as record:
        schema, _ = estimate_schema(X, mu=3.0, threshold_delta=1e-6, rng=np.random.default_rng(8))
    assert len(record) == 1 and not schema["c7"].nullable and schema["c7"].missing == "impute"


# ----------------------------------------------------------------------------- discrete columns: NA and bools
def test_estimate_boolean_column_with_a_rare_missing_value_imputes_the_noisy_majority():
    # one NA in a pandas "boolean" column used to make the whole fit raise (no slot for it)
    from skdpgen.encoding import TabularEncoder

    rng = np.random.default_rng(0)
    n = 3000
    flag = pd.array(rng.random(n) < 0.3, dtype="boolean")
    flag[5] = pd.NA
    X = pd.DataFrame({"flag": flag, "x": rng.normal(size=n)})
    schema, _ = estimate_schema(X, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))
    spec = schema["flag"]
    assert spec.kind == "boolean" and not spec.nullable
    assert spec.missing == "impute" and spec.fill_value is False  # the larger noisy count
    assert Schema.from_dict(json.loads(schema.to_json())) == schema
    enc = TabularEncoder(schema).fit(X)
    back = enc.inverse_transform(enc.transform(X))
    assert back["flag"].dtype == "boolean" and not back["flag"].isna().any()
    assert back["flag"][5] is np.False_ or back["flag"][5] is False
    assert back["flag"].drop(index=5).equals(X["flag"].drop(index=5))
    # many missing values: nullable, and modelled
    flag2 = flag.copy()
    flag2[:600] = pd.NA
    schema2, _ = estimate_schema(X.assign(flag=flag2), mu=1.0, threshold_delta=1e-6,
                                 rng=np.random.default_rng(0))
    assert schema2["flag"].nullable and schema2["flag"].missing == "error" and schema2["flag"].fill_value is None


def test_estimate_declared_domain_imputes_its_noisy_majority():
    X = pd.DataFrame({"c": pd.Series(["b"] * 700 + ["a"] * 300 + [None], dtype=object)})
    schema, _ = estimate_schema(X, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0),
                                candidates={"c": ["a", "b", "z"]})
    assert schema["c"].categories == ("a", "b", "z") and schema["c"].fill_value == "b"


def test_bool_and_equal_number_in_one_object_column():
    # pandas value_counts merges True and 1 (they hash equal): every True became 1. They are now
    # counted apart, and a column that keeps both raises instead of merging them silently.
    mixed = pd.DataFrame({"c": pd.Series([1] * 400 + [True] * 400 + [2] * 200, dtype=object)})
    with pytest.raises(ValueError, match="'c' holds both bool values and numbers equal to them"):
        estimate_schema(mixed, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="'c' holds both bool values"), pytest.warns(PrivacyLeakWarning):
        Schema.infer(mixed)
    # a bool and a number that differ are two categories
    ok = pd.DataFrame({"c": pd.Series([True] * 500 + [2] * 500, dtype=object)})
    schema, _ = estimate_schema(ok, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))
    assert schema["c"].categories == (True, 2) and type(schema["c"].categories[0]) is bool
    # a rare True is not released (counted on its own, not merged into the count of 1)
    rare = pd.DataFrame({"c": pd.Series([1] * 500 + [0] * 500 + [True], dtype=object)})
    schema, _ = estimate_schema(rare, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(0))
    assert schema["c"].categories == (0, 1) and all(type(c) is int for c in schema["c"].categories)
