"""DPMMDSynthesizer refuses bad input with a message that names the problem; nothing is dropped silently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from skdpgen import DPMMDSynthesizer
from skdpgen.privacy import PrivacyLedger

FAST = dict(n_iter=2, batch_size=16, hidden=(8,), hermite_order=2, latent_dim=4, random_state=0, device="cpu")

SCHEMA = {
    "age": {"type": "integer", "bounds": [0, 100]},
    "income": {"type": "continuous", "bounds": [0, 1e5]},
    "sex": {"type": "categorical", "categories": ["F", "M"]},
    "label": {"type": "categorical", "categories": ["no", "yes"]},
    "__target__": "label",
}



def _table(n=12):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.integers(18, 80, n), "income": rng.uniform(0, 5e4, n),
                      "sex": pd.Series(["F", "M"] * (n // 2), dtype=object)})
    y = pd.Series(["no", "yes", "yes"] * (n // 3), name="label", dtype=object)
    return X, y


def _syn(**kw):
    return DPMMDSynthesizer(**{**FAST, "schema": SCHEMA, **kw})


@pytest.fixture(scope="module")
def fitted():
    X, y = _table()
    return _syn().fit(X, y)


@pytest.fixture(scope="module")
def fitted_no_y():
    X, _ = _table()
    return _syn().fit(X)


# ----------------------------------------------------------------------------- empty data
@pytest.mark.parametrize("X, match", [
    (pd.DataFrame({"age": pd.Series([], dtype=int)}), "0 rows"),
    (pd.DataFrame(index=range(5)), "0 columns"),
    (np.empty((0, 3)), r"0 sample\(s\)"),
    (np.empty((5, 0)), r"0 feature\(s\)"),
])
def test_empty_data(X, match):
    with pytest.raises(ValueError, match=match):
        DPMMDSynthesizer(**FAST).fit(X)
    with pytest.raises(ValueError, match=match):
        _syn().fit(X)


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("epsilon", [0, -1.0, float("nan")])
def test_epsilon_must_be_positive(epsilon):
    X, y = _table()
    with pytest.raises(ValueError, match="'epsilon' parameter"):
        _syn(epsilon=epsilon).fit(X, y)


@pytest.mark.parametrize("delta", [0, 1, -1, float("nan")])
def test_delta_must_be_in_open_unit_interval(delta):
    X, y = _table()
    with pytest.raises(ValueError, match=r"'delta' parameter .* range \(0.0, 1.0\)"):
        _syn(delta=delta).fit(X, y)


def test_unknown_feature_map():
    X, y = _table()
    with pytest.raises(ValueError, match="'features' parameter"):
        _syn(features="wavelet").fit(X, y)


def test_perceptual_needs_an_extractor():
    X, y = _table()
    with pytest.raises(ValueError, match="features='perceptual' needs feature_extractor"):
        _syn(features="perceptual").fit(X, y)


def test_schema_of_the_wrong_type():
    X, y = _table()
    with pytest.raises(ValueError, match="'schema' parameter"):
        _syn(schema=42).fit(X, y)


def test_partial_fit_needs_a_declared_schema():
    X, _ = _table()
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as info:
        DPMMDSynthesizer(**FAST).partial_fit(X)
    assert "partial_fit needs a declared schema" in str(info.value.__cause__)  # shown in the traceback


def test_finalize_without_partial_fit():
    with pytest.raises(ValueError, match="nothing to finalize"):
        _syn().finalize()


# ----------------------------------------------------------------------------- the data against the schema
def test_column_not_in_the_schema():
    X, y = _table()
    with pytest.raises(ValueError, match=r"schema does not describe the columns \['zip'\]"):
        _syn().fit(X.assign(zip=1.0), y)


def test_unknown_category_raises_rather_than_dropping_the_row():
    X, y = _table()
    X.loc[4, "sex"] = "X"
    with pytest.raises(ValueError, match=r"column 'sex' has values not among the schema's categories") as info:
        _syn().fit(X, y)
    assert "'X'" not in str(info.value)  # the value is private


def test_unknown_label_raises_rather_than_dropping_the_row():
    X, y = _table()
    y[2] = "maybe"
    with pytest.raises(ValueError, match=r"y has labels not declared in the schema \(values of type str") as info:
        _syn().fit(X, y)
    assert "maybe" not in str(info.value)  # the value is private


def test_infinite_values():
    X, y = _table()
    X.loc[1, "income"] = np.inf
    with pytest.raises(ValueError, match=r"column 'income' holds non-finite values \(inf\)"):
        _syn().fit(X, y)
    A = np.random.default_rng(0).normal(size=(10, 2))
    A[3, 1] = -np.inf
    with pytest.raises(ValueError, match="contains infinity"):
        DPMMDSynthesizer(**FAST).fit(A)


@pytest.mark.parametrize("column, value", [("age", np.nan), ("income", np.nan), ("sex", None)])
def test_missing_value_in_a_non_nullable_column(column, value):
    X, y = _table()
    X[column] = X[column].astype(object if column == "sex" else float)
    X.loc[5, column] = value
    # a DECLARED non-nullable column still refuses missing values, without counting them (private)
    with pytest.raises(ValueError, match=rf"column '{column}' has missing values but the schema "
                                         "declares it non-nullable; declare nullable=True") as info:
        _syn().fit(X, y)
    assert not any(ch.isdigit() for ch in str(info.value))


def test_non_numeric_values_in_a_numeric_column():
    X, y = _table()
    X["age"] = X["age"].astype(object)
    X.loc[0, "age"] = "old"
    with pytest.raises(ValueError, match="column 'age' is declared numeric but holds non-numeric values"):
        _syn().fit(X, y)


def test_target_must_be_discrete():
    X, y = _table()
    schema = {**SCHEMA, "label": {"type": "continuous", "bounds": [0, 1]}}
    with pytest.raises(ValueError, match="target 'label' must be categorical or boolean"):
        _syn(schema=schema).fit(X, y.map({"no": 0.0, "yes": 1.0}))


def test_rows_of_a_class_suppressed_by_dp_are_reported():
    # no declared schema: the label set is a DP release, a class held by one row is not released and
    # its row cannot enter the class-conditional embedding; the fit says so
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"v": rng.uniform(1, 2, 2000)})
    y = pd.Series(["a"] * 1000 + ["b"] * 999 + ["c"], name="cls")
    with pytest.warns(UserWarning, match="some rows have labels whose class was not released") as record:
        est = DPMMDSynthesizer(**{**FAST, "schema_share": 0.5}).fit(X, y)
    assert est.classes_.tolist() == ["a", "b"]
    # the exact number of such rows is private: no count in the warning
    assert not any(ch.isdigit() for w in record for ch in str(w.message))


def test_integer_column_names_are_refused_before_the_schema_match():
    X = pd.DataFrame({0: [1.0, 2.0, 3.0], 1: [3.0, 4.0, 5.0]})
    schema = {"0": {"type": "continuous", "bounds": [0, 5]}, "1": {"type": "continuous", "bounds": [0, 5]}}
    with pytest.raises(ValueError, match=r"column names must be strings, got \[0, 1\]; rename"):
        DPMMDSynthesizer(**{**FAST, "schema": schema}).fit(X)
    with pytest.raises(ValueError, match="column names must be strings"):
        DPMMDSynthesizer(**FAST).fit(X)


def test_feature_named_like_an_unnamed_y():
    # no schema: an unnamed y is called "target", which clashes with a feature column of that name
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"target": rng.uniform(size=200)})
    labels = np.array(["a", "b"] * 100)
    with pytest.raises(ValueError, match="column named 'target', the name given to an unnamed y; give y a name") \
            as info:
        DPMMDSynthesizer(**{**FAST, "epsilon": 5.0}).fit(X, labels)
    assert "target_name" not in str(info.value)  # the synthesizers have no such parameter
    with pytest.raises(ValueError, match="y is named 'target', like a column of X"):
        DPMMDSynthesizer(**{**FAST, "epsilon": 5.0}).fit(X, pd.Series(labels, name="target"))


def test_y_named_like_a_column_other_than_the_schema_target():
    X, y = _table()
    sex = X.pop("sex")
    schema = {**SCHEMA, "__target__": "label"}
    X = X.assign(label=y)
    with pytest.raises(ValueError, match="y is the column 'sex' but the schema's target .* is 'label'"):
        _syn(schema=schema).fit(X, sex)


# ----------------------------------------------------------------------------- y
def test_y_length_mismatch():
    X, y = _table()
    with pytest.raises(ValueError, match="X and y have different numbers of rows"):
        _syn().fit(X, y.iloc[:11])


def test_y_with_missing_values():
    X, y = _table()
    y[0] = None
    with pytest.raises(ValueError, match="y contains missing values"):
        _syn().fit(X, y)


def test_y_must_be_one_column():
    X, y = _table()
    with pytest.raises(ValueError, match="y must be one column"):
        _syn().fit(X, pd.DataFrame({"a": y, "b": y}))


def test_return_y_without_y(fitted_no_y):
    with pytest.raises(ValueError, match="return_y=True needs a class-conditional fit"):
        fitted_no_y.sample(3, return_y=True)


# ----------------------------------------------------------------------------- sample
@pytest.mark.parametrize("n", [0, -3])
def test_n_samples_below_one(fitted, n):
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        fitted.sample(n)


@pytest.mark.parametrize("n", [2.5, 3.0, "10", True, None])
def test_n_samples_not_an_integer(fitted, n):
    with pytest.raises(TypeError, match="n_samples must be an integer"):
        fitted.sample(n)


def test_sample_before_fit():
    with pytest.raises(NotFittedError):
        _syn().sample(3)


# ----------------------------------------------------------------------------- score
def test_score_missing_column(fitted):
    X, y = _table()
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing:\n- sex"):
        fitted.score(X.drop(columns="sex"), y)


def test_score_extra_column(fitted):
    X, y = _table()
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- zip"):
        fitted.score(X.assign(zip=0.0), y)


def test_score_wrong_number_of_columns_for_an_array():
    A = np.random.default_rng(0).normal(size=(10, 3))
    est = DPMMDSynthesizer(**{**FAST, "epsilon": float("inf")}).fit(A)
    with pytest.raises(ValueError, match="X has 2 features, but DPMMDSynthesizer is expecting 3"):
        est.score(A[:, :2])


def test_score_rejects_what_fit_rejects(fitted):
    X, y = _table()
    bad = X.copy()
    bad.loc[0, "sex"] = "X"
    with pytest.raises(ValueError, match="not among the schema's categories"):
        fitted.score(bad, y)
    bad = X.copy()
    bad.loc[0, "income"] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        fitted.score(bad, y)
    y_bad = y.copy()
    y_bad[0] = "maybe"
    with pytest.raises(ValueError, match="y has labels not declared in the schema"):
        fitted.score(X, y_bad)
    with pytest.raises(ValueError, match="X and y have different numbers of rows"):
        fitted.score(X, y.iloc[:3])


def test_failed_fit_records_nothing():
    X, y = _table()
    X.loc[4, "sex"] = "X"
    ledger = PrivacyLedger()
    with pytest.raises(ValueError, match="not among the schema's categories"):
        _syn(ledger=ledger).fit(X, y)
    assert ledger.entries == []


# ---- a failed refit leaves the estimator unfitted (no mix of two fits), with a clear message


def _refit_cases():
    import warnings

    from sklearn.neural_network import MLPClassifier
    from torch import nn

    from skdpgen import DirichletFeatureSelector, DirichletPruner
    from skdpgen.bayes import (
        DPBayesianGaussianMixture,
        DPBayesianLogisticRegression,
        DPLatentDirichletAllocation,
    )

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier((8,), max_iter=200, random_state=0).fit(X, y)
    torch_net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    fast = dict(epochs=1, random_state=0)
    counts = rng.poisson(2.0, size=(40, 12))
    from skdpgen import DPFlowSynthesizer

    df = pd.DataFrame({"a": rng.normal(size=120), "b": rng.choice(["x", "y"], size=120)})
    df_bad = df.assign(a=df["a"].where(df.index != 3, np.inf))
    return [
        # (estimator, first fit args, refit args that fail, error message)
        (DPMMDSynthesizer(epsilon=float("inf"), n_iter=5, random_state=0, device="cpu"), (df,), (df_bad,),
         "non-finite"),
        (DPFlowSynthesizer(epsilon=float("inf"), epochs=1, n_layers=1, hidden=(8,), random_state=0, device="cpu"),
         (df,), (df_bad,), "non-finite"),
        (DirichletPruner(mlp, fine_tune_epochs=0, min_steps=0, **fast), (X, y), (X[:, :3], y),
         "X has 3 features, but the estimator MLPClassifier was fitted with 4"),
        (DirichletPruner(torch_net, fine_tune_epochs=0, min_steps=0, **fast), (X, y), (X[:, :3], y),
         "the network cannot be applied to X"),
        (DirichletFeatureSelector(mlp, n_features_to_select=2, **fast), (X, y), (X[:, :3], y),
         "X has 3 features, but the estimator MLPClassifier was fitted with 4"),
        (DirichletFeatureSelector(torch_net, n_features_to_select=2, **fast), (X, y), (X[:, :3], y),
         "the network cannot be applied to X"),
        (DPBayesianLogisticRegression(epsilon=float("inf"), random_state=0), (X, y), (X, y + np.arange(120) % 3),
         "binary"),
        (DPBayesianGaussianMixture(n_components=2, epsilon=float("inf"), degrees_of_freedom_prior=3.5,
                                   random_state=0), (X,), (np.c_[X, X],), "degrees_of_freedom_prior"),
        (DPLatentDirichletAllocation(n_components=2, epsilon=float("inf"), random_state=0), (counts,),
         (-counts,), "Negative values"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_failed_refit_leaves_the_estimator_unfitted(case):
    from sklearn.utils.validation import check_is_fitted

    est, first, bad, match = _refit_cases()[case]
    est.fit(*first)
    check_is_fitted(est)
    with pytest.raises(ValueError, match=match):
        est.fit(*bad)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]


def test_a_refit_keeps_nothing_of_the_earlier_fit():
    # a private fit, then a non-private one: no privacy report or DP attribute of the first may remain
    import warnings

    from sklearn.neural_network import MLPClassifier

    from skdpgen import DirichletFeatureSelector, DirichletPruner

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier((8,), max_iter=200, random_state=0).fit(X, y)
    pruner = DirichletPruner(mlp, epsilon=2.0, min_steps=5, batch_size=64, fine_tune_epochs=0, random_state=0)
    selector = DirichletFeatureSelector(n_features_to_select=2, epsilon=2.0, classes=[0, 1], epochs=1,
                                        batch_size=64, random_state=0)
    gone = ("privacy_report_", "n_samples_estimate_", "dpsgd_")
    for est, refit, names in ((pruner, dict(epsilon=None, criterion="l1"), (*gone, "concentrations_")),
                              (selector, dict(epsilon=None), gone)):
        est.fit(X, y)
        assert all(hasattr(est, name) for name in names)
        est.set_params(**refit).fit(X, y)
        for name in names:
            assert not hasattr(est, name), name


def test_refits_keep_what_scikit_learn_stores_outside_fit():
    # set_output's configuration lives on the instance: neither a refit nor a failed fit may drop it
    from skdpgen import DirichletFeatureSelector

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(120, 4)), columns=list("abcd"))
    y = (X["a"] > 0).astype(int)
    sel = DirichletFeatureSelector(n_features_to_select=2, hidden=(8,), epochs=1, random_state=0)
    sel.set_output(transform="pandas")
    sel.fit(X, y)
    with pytest.raises(ValueError):
        sel.fit(X.assign(a=np.nan), y)
    out = sel.fit(X, y).transform(X)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(sel.get_feature_names_out())


def test_schema_estimate_failure_does_not_print_the_row_count():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=37), "b": rng.normal(size=37)})
    with pytest.raises(ValueError, match="schema_share") as info:
        DPMMDSynthesizer(epsilon=0.05, n_iter=5, random_state=0).fit(X)
    assert "37" not in str(info.value)


def test_a_fit_failing_after_the_schema_estimate_records_it():
    # the schema's noise is drawn before the encoder meets the inf: that release is recorded, the fit is
    # refused before anything is drawn when the ledger cannot afford the whole plan
    from skdpgen.exceptions import PrivacyBudgetExceeded

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    ledger = PrivacyLedger()
    with pytest.raises(ValueError, match="non-finite"):
        DPMMDSynthesizer(epsilon=1.0, ledger=ledger, n_iter=5, random_state=0).fit(X.assign(a=X["a"].replace(
            X["a"].iloc[0], np.inf)))
    assert [e.name for e in ledger.entries] == ["schema"]
    full = PrivacyLedger(max_epsilon=0.5)
    with pytest.raises(PrivacyBudgetExceeded):
        DPMMDSynthesizer(epsilon=1.0, ledger=full, n_iter=5, random_state=0).fit(X)
    assert len(full) == 0
    ok = DPMMDSynthesizer(epsilon=1.0, ledger=ledger, n_iter=5, random_state=0).fit(X)
    assert [e.name for e in ledger.entries] == ["schema", "schema", "DPMMDSynthesizer.embedding"]
    assert ok.privacy_report_["epsilon"] == pytest.approx(1.0, rel=1e-6)
    assert not hasattr(ok, "_reservation")


def test_delta_above_one_over_n_warns():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    schema = {"a": {"type": "continuous", "bounds": [-4, 4]}, "b": {"type": "continuous", "bounds": [-4, 4]}}
    with pytest.warns(UserWarning, match="above 1/n"):
        DPMMDSynthesizer(epsilon=1.0, delta=0.05, schema=schema, n_iter=3, random_state=0).fit(X)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        DPMMDSynthesizer(epsilon=1.0, delta=1e-5, schema=schema, n_iter=3, random_state=0).fit(X)


def test_duplicate_column_names_are_refused_clearly():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "a"])
    with pytest.raises(ValueError, match=r"duplicate column names \['a'\]"):
        DPMMDSynthesizer(epsilon=float("inf"), n_iter=3).fit(X)


def test_a_warning_raised_as_an_error_inside_the_schema_estimate_still_records_it():
    # the imputation warning reads the noisy counts: turned into an error, it still comes after the noise
    import warnings

    rng = np.random.default_rng(0)
    a = rng.normal(size=20000)
    a[:200] = np.nan
    X = pd.DataFrame({"a": a, "c": rng.choice(["x", "y"], 20000)})
    ledger = PrivacyLedger()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="may have missing values"):
            DPMMDSynthesizer(epsilon=0.5, schema_share=0.02, ledger=ledger, n_iter=2, random_state=0).fit(X)
    assert [e.name for e in ledger.entries] == ["schema"]


def test_an_array_after_a_dataframe_fit_with_text_columns_is_scored():
    import warnings

    from skdpgen import DPFlowSynthesizer

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "c": rng.choice(["x", "y"], 300), "k": rng.integers(0, 5, 300)})
    for model in (DPMMDSynthesizer(epsilon=float("inf"), n_iter=3, random_state=0),
                  DPFlowSynthesizer(epsilon=float("inf"), epochs=1, n_layers=1, hidden=(8,), random_state=0)):
        model.fit(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scikit-learn: X has no feature names
            assert model.score(X.to_numpy()) == pytest.approx(model.score(X))
