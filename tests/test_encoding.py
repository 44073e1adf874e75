"""Tests of skdpgen.encoding.TabularEncoder: layout, round trips, clipping, errors, sklearn API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from skdpgen.encoding import OTHER, Block, TabularEncoder
from skdpgen.schema import ColumnSpec, Schema, estimate_schema

SCHEMA = {
    "age": {"type": "integer", "bounds": [17, 90]},
    "kids": {"type": "integer", "bounds": [0, 10], "nullable": True},
    "hours": {"type": "continuous", "bounds": [1, 99], "nullable": True},
    "city": {"type": "categorical", "categories": ["a", "b"], "nullable": True},
    "obj": {"type": "categorical", "categories": ["x", "y"], "nullable": True},
    "cat": {"type": "categorical", "categories": ["hi", "lo"], "nullable": True},
    "flag": {"type": "boolean"},
    "nflag": {"type": "boolean", "nullable": True},
    "code": {"type": "categorical", "categories": [1, 2, 3]},
    "f32": {"type": "continuous", "bounds": [0, 1]},
}


def mixed_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "age": np.array([20, 35, 50, 90, 17], dtype=np.int64),
        "kids": pd.array([0, None, 2, 3, 10], dtype="Int64"),
        "hours": [1.5, np.nan, 40.0, 99.0, 12.25],
        "city": pd.Series(["a", None, "b", "a", "b"]),  # pandas "str" dtype
        "obj": pd.Series(["x", None, "y", "x", "y"], dtype=object),
        "cat": pd.Categorical(["lo", "hi", None, "lo", "lo"], categories=["hi", "lo"]),
        "flag": [True, False, True, True, False],
        "nflag": pd.array([True, None, False, True, False], dtype="boolean"),
        "code": np.array([1, 2, 3, 1, 3]),
        "f32": np.array([0.5, 0.25, 1.0, 0.0, 0.75], dtype=np.float32),
    })


@pytest.fixture
def fitted():
    df = mixed_frame()
    return TabularEncoder(schema=SCHEMA).fit(df), df


# ----------------------------------------------------------------------------- layout
def test_layout_and_feature_names(fitted):
    enc, df = fitted
    assert enc.input_kind_ == "pandas" and enc.n_features_in_ == 10
    assert list(enc.feature_names_in_) == list(df.columns)
    assert list(enc.dtypes_) == list(df.dtypes)
    b = {(blk.column, blk.role): blk for blk in enc.blocks_}
    assert b["age", "value"] == Block("age", "continuous", 0, 1, "value")
    assert b["kids", "missing"] == Block("kids", "softmax", 2, 4, "missing")
    assert b["city", "categories"].width == 3  # a, b, missing
    assert b["flag", "categories"].width == 2 and b["nflag", "categories"].width == 3
    assert enc.blocks_[-1] == Block("f32", "continuous", 24, 25, "value")
    assert enc.n_outputs_ == 25
    names = enc.get_feature_names_out()
    assert names.dtype == object and len(names) == enc.n_outputs_
    assert list(names[:7]) == ["age", "kids", "kids__observed", "kids__missing", "hours", "hours__observed",
                               "hours__missing"]
    assert "city=a" in names and "city__missing" in names and "flag=True" in names and "code=3" in names
    # consecutive blocks tile the model space
    assert [blk.start for blk in enc.blocks_[1:]] == [blk.stop for blk in enc.blocks_[:-1]]


def test_layout_follows_schema_order_not_input_order():
    schema = {"b": {"type": "continuous", "bounds": [0, 1]},
              "a": {"type": "categorical", "categories": ["u", "v"], "unknown": "other"}}
    X = pd.DataFrame({"a": ["u", "v"], "b": [0.1, 0.2]})
    enc = TabularEncoder(schema).fit(X)
    assert [blk.column for blk in enc.blocks_] == ["b", "a"]
    assert list(enc.get_feature_names_out()) == ["b", "a=u", "a=v", "a__other"]
    np.testing.assert_allclose(enc.transform(X), [[0.1, 1, 0, 0], [0.2, 0, 1, 0]])


# ----------------------------------------------------------------------------- values
def test_transform_values(fitted):
    enc, df = fitted
    Z = enc.transform(df)
    assert Z.dtype == np.float64 and Z.shape == (5, 25)
    np.testing.assert_allclose(Z[:, 0], (df["age"] - 17) / 73)
    assert Z[1, 1] == 0.5 and list(Z[1, 2:4]) == [0.0, 1.0] and list(Z[0, 2:4]) == [1.0, 0.0]
    np.testing.assert_allclose(Z[[0, 2, 3, 4], 4], (df["hours"].iloc[[0, 2, 3, 4]] - 1) / 98)
    assert ((Z >= 0) & (Z <= 1)).all()
    for blk in enc.blocks_:  # each softmax block is one-hot
        if blk.kind == "softmax":
            np.testing.assert_array_equal(Z[:, blk.slice].sum(axis=1), 1.0)


def test_values_outside_bounds_are_clipped():
    enc = TabularEncoder({"x": {"type": "continuous", "bounds": [0, 10]},
                          "n": {"type": "integer", "bounds": [0, 5]}})
    X = pd.DataFrame({"x": [-3.0, 5.0, 12.0], "n": [7, -1, 2]})
    Z = enc.fit_transform(X)
    np.testing.assert_allclose(Z, [[0.0, 1.0], [0.5, 0.0], [1.0, 0.4]])
    back = enc.inverse_transform(Z)
    assert back["x"].tolist() == [0.0, 5.0, 10.0] and back["n"].tolist() == [5, 0, 2]


def test_fit_uses_no_statistics_and_rows_are_independent(fitted):
    enc, df = fitted
    other = TabularEncoder(schema=SCHEMA).fit(df.iloc[[3]])
    assert other.blocks_ == enc.blocks_ and other.n_outputs_ == enc.n_outputs_
    np.testing.assert_array_equal(other.transform(df), enc.transform(df))
    np.testing.assert_array_equal(enc.transform(df.iloc[[2]]), enc.transform(df)[[2]])


# ----------------------------------------------------------------------------- round trips
def test_round_trip_mixed_frame(fitted):
    enc, df = fitted
    back = enc.inverse_transform(enc.transform(df))
    pd.testing.assert_frame_equal(back, df)


def test_round_trip_reordered_columns(fitted):
    enc, df = fitted
    Z = enc.transform(df[df.columns[::-1]])
    np.testing.assert_array_equal(Z, enc.transform(df))
    pd.testing.assert_frame_equal(enc.inverse_transform(Z), df)


def test_round_trip_ndarray():
    X = np.random.default_rng(0).normal(size=(50, 3))
    schema = {f"x{j}": {"type": "continuous", "bounds": [-6, 6]} for j in range(3)}
    enc = TabularEncoder(schema).fit(X)
    assert enc.input_kind_ == "numpy" and not hasattr(enc, "feature_names_in_")
    back = enc.inverse_transform(enc.transform(X))
    assert isinstance(back, np.ndarray) and back.dtype == X.dtype
    np.testing.assert_allclose(back, X, rtol=0, atol=1e-12)


def test_round_trip_int_and_object_ndarrays():
    Xi = np.array([[1, 2], [3, 4], [0, 10]])
    schema = {"x0": {"type": "integer", "bounds": [0, 10]}, "x1": {"type": "integer", "bounds": [0, 10]}}
    enc = TabularEncoder(schema).fit(Xi)
    back = enc.inverse_transform(enc.transform(Xi))
    assert back.dtype == Xi.dtype
    np.testing.assert_array_equal(back, Xi)
    Xo = np.array([["a", 1.0], ["b", np.nan]], dtype=object)
    enc = TabularEncoder({"x0": {"type": "categorical", "categories": ["a", "b"]},
                          "x1": {"type": "continuous", "bounds": [0, 10], "nullable": True}}).fit(Xo)
    back = enc.inverse_transform(enc.transform(Xo))
    assert back.dtype == object and back[0, 0] == "a" and back[0, 1] == 1.0 and np.isnan(back[1, 1])


# ----------------------------------------------------------------------------- decoding
def test_inverse_transform_soft_output(fitted):
    enc, df = fitted
    Z = enc.transform(df)
    rng = np.random.default_rng(0)
    soft = Z * 0.6 + rng.uniform(0, 0.3, Z.shape)  # argmax unchanged, values perturbed
    soft[:, 0] = [-0.5, 1.7, 0.5, 0.5, 0.5]  # outside [0, 1] -> clipped to the bounds
    back = enc.inverse_transform(soft)
    assert back["age"].tolist()[:2] == [17, 90] and back["age"].dtype == np.int64
    for col in ["city", "obj", "cat", "flag", "nflag", "code"]:
        pd.testing.assert_series_equal(back[col], df[col])
    assert enc.inverse_transform(torch.as_tensor(Z)).equals(enc.inverse_transform(Z))


def test_decoded_missing_restores_nullable_dtypes():
    schema = {"n": {"type": "integer", "bounds": [0, 9], "nullable": True},
              "b": {"type": "boolean", "nullable": True},
              "s": {"type": "categorical", "categories": ["u"], "nullable": True}}
    X = pd.DataFrame({"n": [1, 2], "b": [True, False], "s": pd.Series(["u", "u"], dtype=object)})
    enc = TabularEncoder(schema).fit(X)
    Z = enc.transform(X)
    Z[1] = [0.5, 0, 1, 0, 0, 1, 0, 1]  # row 1 missing everywhere
    back = enc.inverse_transform(Z)
    assert str(back["n"].dtype) == "Int64" and back["n"].tolist()[0] == 1
    assert back["n"].isna().tolist() == [False, True]
    assert str(back["b"].dtype) == "boolean" and back["b"].isna().tolist() == [False, True]
    assert back["s"].dtype == object and back["s"].tolist() == ["u", None]


def test_unknown_other_slot():
    schema = {"c": {"type": "categorical", "categories": ["a", "b"], "unknown": "other"},
              "n": {"type": "categorical", "categories": [1, 2], "unknown": "other"},
              "k": {"type": "categorical", "categories": ["p"], "unknown": "other"},
              "s": {"type": "categorical", "categories": ["q"], "unknown": "other"}}
    X = pd.DataFrame({"c": pd.Series(["a", "zz", None], dtype=object), "n": [1, 5, 2],
                      "k": pd.Categorical(["p", "new", "p"]), "s": ["q", "r", "q"]})
    enc = TabularEncoder(schema).fit(X)
    Z = enc.transform(X)
    np.testing.assert_array_equal(Z[:, :3], [[1, 0, 0], [0, 0, 1], [0, 0, 1]])  # unknown and missing
    back = enc.inverse_transform(Z)
    assert back["c"].tolist() == ["a", OTHER, OTHER]
    assert back["s"].tolist() == ["q", OTHER, "q"] and back["s"].dtype == X["s"].dtype
    assert back["n"].dtype == "Int64" and back["n"].isna().tolist() == [False, True, False]
    # the category dtype is rebuilt from the public schema: the data-inferred "new" does not leak
    assert list(back["k"].cat.categories) == ["p", OTHER] and back["k"].tolist() == ["p", OTHER, "p"]


def test_encoder_with_dp_estimated_schema():
    rng = np.random.default_rng(0)
    n = 5000
    X = pd.DataFrame({"w": rng.choice(["p", "q"], n), "x": rng.normal(10, 2, n)})
    X.loc[0, "w"] = "unique-value"
    schema, _ = estimate_schema(X, mu=1.0, threshold_delta=1e-6, rng=np.random.default_rng(1))
    enc = TabularEncoder(schema).fit(X)
    Z = enc.transform(X)
    assert list(enc.get_feature_names_out()) == ["w=p", "w=q", "w__other", "x"]
    assert Z[0, 2] == 1.0 and Z[1:, 2].sum() == 0  # the rare value went to the other slot
    assert enc.inverse_transform(Z)["w"].iloc[0] == OTHER


def test_target_in_schema():
    schema = Schema({"x": {"type": "continuous", "bounds": [0, 1]},
                     "y": {"type": "categorical", "categories": [0, 1]}}, target="y")
    enc = TabularEncoder(schema).fit(pd.DataFrame({"x": [0.5]}))
    assert list(enc.schema_) == ["x"] and enc.schema_.target is None
    enc = TabularEncoder(schema).fit(pd.DataFrame({"x": [0.5], "y": [1]}))
    assert list(enc.schema_) == ["x", "y"] and enc.schema_.target == "y" and enc.n_outputs_ == 3


# ----------------------------------------------------------------------------- errors
def test_requires_a_schema():
    with pytest.raises(ValueError, match="needs a schema"):
        TabularEncoder().fit(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(TypeError, match="schema must be"):
        TabularEncoder(schema=3).fit(pd.DataFrame({"a": [1.0]}))


def test_schema_mismatch_at_fit():
    with pytest.raises(ValueError, match=r"missing from X: \['flag'\].*not in the schema: \['zz'\]"):
        TabularEncoder(SCHEMA).fit(mixed_frame().drop(columns="flag").assign(zz=1))
    with pytest.raises(ValueError, match="'age' is declared integer.*str"):
        TabularEncoder(SCHEMA).fit(mixed_frame().assign(age=["a"] * 5))


def test_wrong_columns_at_transform(fitted):
    enc, df = fitted
    with pytest.raises(ValueError, match=r"missing \['flag'\], unexpected \['zz'\]"):
        enc.transform(df.drop(columns="flag").assign(zz=1))
    with pytest.raises(ValueError, match="0 rows"):
        enc.transform(df.iloc[:0])
    with pytest.raises(ValueError, match="shape"):
        enc.inverse_transform(np.zeros((2, 3)))


def test_unknown_category_error_shows_no_value(fitted):
    # the values are private (a name, an ID): neither they nor how many rows hold them are shown
    enc, df = fitted
    bad = df.assign(obj=pd.Series(["x", "Alice Smith", "y", "Bob Jones", "x"], dtype=object))
    with pytest.raises(ValueError, match=r"'obj' has values not among the schema's categories.*"
                                         r"unknown='other'") as info:
        enc.transform(bad)
    text = str(info.value)
    assert "Alice" not in text and "Bob" not in text and not any(ch.isdigit() for ch in text)
    assert "holds" not in text  # same type (str) as the categories: no type hint


@pytest.mark.parametrize("categories, values, declared, held", [
    (["0", "1"], [0, 1, 1], "str", "int"),            # a JSON schema with quoted numbers, a CSV of ints
    ([0, 1], ["0", "1", "1"], "int", "str"),
    (["a", "b"], pd.Series(["a", 2.5, "b"], dtype=object), "str", "float"),
])
def test_unknown_category_error_names_mismatched_types(categories, values, declared, held):
    X = pd.DataFrame({"c": values})
    enc = TabularEncoder({"c": {"type": "categorical", "categories": categories}}).fit(X)
    with pytest.raises(ValueError, match=rf"'c' has values not among.*categories are {declared} but the column "
                                         rf"also holds {held} values: declare the categories with the column's "
                                         "type.*or convert the column") as info:
        enc.transform(X)
    assert "2.5" not in str(info.value)


def test_missing_in_non_nullable_column(fitted):
    enc, df = fitted
    with pytest.raises(ValueError, match="'age' has missing values.*nullable=True") as info:
        enc.transform(df.assign(age=[20.0, np.nan, 30.0, 40.0, 50.0]))
    assert not any(ch.isdigit() for ch in str(info.value))  # no count: it is private
    with pytest.raises(ValueError, match="'code' has missing values.*nullable=True.*"
                                         "schema estimate never leaves a column so"):
        enc.transform(df.assign(code=[1.0, None, 2.0, 3.0, 1.0]))
    with pytest.raises(ValueError, match="'flag' has missing values.*missing='impute' with a fill_value"):
        enc.transform(df.assign(flag=pd.array([True, None, False, True, True], dtype="boolean")))


def test_missing_impute_in_discrete_columns():
    schema = Schema([ColumnSpec("b", "boolean", missing="impute", fill_value=True),
                     ColumnSpec("c", "categorical", categories=("p", "q"), missing="impute", fill_value="q",
                                unknown="other")])
    X = pd.DataFrame({"b": pd.array([False, None, True], dtype="boolean"),
                      "c": pd.Series(["p", None, "zz"], dtype=object)})
    enc = TabularEncoder(schema).fit(X)
    assert enc.n_outputs_ == 5  # no missing slots
    Z = enc.transform(X)
    np.testing.assert_array_equal(Z, [[1, 0, 1, 0, 0], [0, 1, 0, 1, 0], [0, 1, 0, 0, 1]])  # missing -> fill
    back = enc.inverse_transform(Z)
    assert back["b"].tolist() == [False, True, True] and back["b"].dtype == "boolean"
    assert back["c"].tolist() == ["p", "q", OTHER]


def test_integer_round_trip_at_the_float64_limits():
    # exact for |lo|, |hi| <= 2**53 and hi - lo <= 2**53 on the linear scale
    lo, hi = -(2**52), 2**52
    schema = Schema([ColumnSpec("k", "integer", bounds=(lo, hi), scale="linear")])
    X = pd.DataFrame({"k": np.array([lo, lo + 1, -1, 0, 1, 12345678901, hi - 1, hi], dtype=np.int64)})
    enc = TabularEncoder(schema).fit(X)
    assert enc.inverse_transform(enc.transform(X))["k"].tolist() == X["k"].tolist()
    log = Schema([ColumnSpec("k", "integer", bounds=(0, 2**45), scale="log")])
    X = pd.DataFrame({"k": np.array([0, 1, 2, 999, 2**45 - 1, 2**45], dtype=np.int64)})
    enc = TabularEncoder(log).fit(X)
    assert enc.inverse_transform(enc.transform(X))["k"].tolist() == X["k"].tolist()
    # the widest bounds accepted: the encoding stays finite (hi - lo does not overflow)
    wide = TabularEncoder({"x": {"type": "continuous", "bounds": [-8e307, 8e307]}}).fit(pd.DataFrame({"x": [0.0]}))
    Z = wide.transform(pd.DataFrame({"x": [-8e307, 0.0, 8e307]}))
    np.testing.assert_allclose(Z[:, 0], [0.0, 0.5, 1.0])
    assert np.isfinite(wide.inverse_transform(Z)["x"]).all()


@pytest.mark.parametrize("kind, bounds, scale, fill", [
    ("continuous", (0.0, 10.0), "auto", 5.0),
    ("integer", (0.0, 9.0), "auto", 5.0),        # midpoint 4.5, rounded half up
    ("integer", (-9.0, 0.0), "auto", -4.0),      # midpoint -4.5, rounded half up
    ("continuous", (0.0, 1e6), "log", 5e5),      # the value is imputed, not its code 0.5
])
def test_missing_impute_encodes_the_public_midpoint(kind, bounds, scale, fill):
    schema = Schema([ColumnSpec("v", kind, bounds=bounds, scale=scale, missing="impute")])
    assert schema["v"].fill_value == fill
    X = pd.DataFrame({"v": [bounds[0], np.nan, fill]})
    enc = TabularEncoder(schema).fit(X)
    Z = enc.transform(X)
    assert enc.n_outputs_ == 1 and Z[1, 0] == Z[2, 0]  # no missing slot; the same code as the midpoint
    back = enc.inverse_transform(Z)
    assert back["v"].dtype == X["v"].dtype and not back["v"].isna().any()
    assert back["v"].iloc[1] == pytest.approx(fill)


def test_missing_impute_keeps_nullable_integer_dtype():
    schema = Schema([ColumnSpec("k", "integer", bounds=(0, 10), missing="impute")])
    X = pd.DataFrame({"k": pd.array([1, None, 7], dtype="Int64")})
    enc = TabularEncoder(schema).fit(X)
    back = enc.inverse_transform(enc.transform(X))
    assert back["k"].dtype == "Int64" and back["k"].tolist() == [1, 5, 7]


def test_category_dtype_is_rebuilt_from_a_declared_schema():
    # pd.Categorical infers its categories from the rows: the rare one must not reach dtypes_ or the pickle
    import pickle

    values = ["a", "b"] * 50 + ["RARE_PERSON_NAME"]
    X = pd.DataFrame({"c": pd.Categorical(values)})
    assert "RARE_PERSON_NAME" in X["c"].cat.categories
    schema = {"c": {"type": "categorical", "categories": ["a", "b"], "unknown": "other"}}
    enc = TabularEncoder(schema).fit(X)
    assert list(enc.dtypes_["c"].categories) == ["a", "b", OTHER]
    assert b"RARE_PERSON_NAME" not in pickle.dumps(enc)
    back = enc.inverse_transform(enc.transform(X))
    assert list(back["c"].cat.categories) == ["a", "b", OTHER] and back["c"].iloc[-1] == OTHER
    strict = TabularEncoder({"c": {"type": "categorical", "categories": ["a", "b"]}}).fit(X.iloc[:100])
    assert list(strict.dtypes_["c"].categories) == ["a", "b"]


def test_infinite_values_rejected(fitted):
    enc, df = fitted
    with pytest.raises(ValueError, match="'hours'.*non-finite"):
        enc.transform(df.assign(hours=[1.0, np.inf, 2.0, 3.0, 4.0]))


# ----------------------------------------------------------------------------- sklearn / torch
def test_set_output_pandas_and_clone(fitted):
    enc, df = fitted
    enc2 = clone(enc).set_output(transform="pandas")
    out = enc2.fit_transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(enc.get_feature_names_out())
    np.testing.assert_array_equal(out.to_numpy(), enc.transform(df))
    pd.testing.assert_frame_equal(enc2.inverse_transform(out), df)


def test_to_tensor(fitted):
    enc, df = fitted
    t = enc.to_tensor(df)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"
    np.testing.assert_allclose(t.numpy(), enc.transform(df), rtol=1e-6)
    assert enc.to_tensor(df, dtype=torch.float64).dtype == torch.float64


def test_schema_from_json_path(tmp_path, fitted):
    enc, df = fitted
    path = tmp_path / "s.json"
    Schema.from_dict(SCHEMA).to_json(path)
    enc_path = TabularEncoder(schema=str(path)).fit(df)
    np.testing.assert_array_equal(enc_path.transform(df), enc.transform(df))
