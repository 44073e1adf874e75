"""Utility metrics: TSTR panel, regression, the ceiling and the sklearn scorers."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity

from skdpgen.metrics import default_models, tstr_evaluate, tstr_score, tstr_scorer


def classification(n, rng, flip=0.0):
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "c": rng.choice(["u", "v", "w"], size=n).astype(object)})
    logit = 2 * X["a"] - X["b"] + (X["c"] == "u") * 1.5
    y = (logit + rng.logistic(size=n) > 0).astype(int)
    if flip:
        y = np.where(rng.random(n) < flip, 1 - y, y)
    return X, pd.Series(y, name="y")


def regression(n, rng):
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return X, pd.Series(3 * X["a"] - X["b"] + rng.normal(scale=0.3, size=n), name="t")


class Resampler:
    """A fake "synthesizer" that resamples fixed rows (optionally with labels shuffled)."""

    def __init__(self, X, y, shuffle_labels=False):
        self.X, self.y, self.shuffle_labels = X, y, shuffle_labels

    def fit(self, X, y=None):
        return self

    def sample(self, n, random_state=None, return_y=False):
        rng = np.random.default_rng(random_state)
        idx = rng.integers(0, len(self.X), n)
        y = self.y.to_numpy()[idx]
        if self.shuffle_labels:
            y = rng.permutation(y)
        X = self.X.iloc[idx].reset_index(drop=True)
        return (X, pd.Series(y, name=self.y.name)) if return_y else X


def test_tstr_evaluate_panel_with_ceiling():
    rng = np.random.default_rng(0)
    Xtr, ytr = classification(1500, rng)
    Xte, yte = classification(1000, rng)
    Xs, ys = classification(1500, rng, flip=0.2)
    table = tstr_evaluate(Xs, ys, Xte, yte, X_train=Xtr, y_train=ytr)
    assert list(table.columns) == ["model", "metric", "synthetic", "real", "gap"]
    assert set(table["model"]) == {"hist_gradient_boosting", "logistic_regression", "random_forest"}
    assert set(table["metric"]) == {"roc_auc", "average_precision", "accuracy"}
    auc = table[table.metric == "roc_auc"]
    assert (auc["real"] > 0.8).all() and (auc["synthetic"] > 0.7).all()
    assert np.allclose(table["gap"], table["real"] - table["synthetic"])
    # without real training rows the ceiling is missing
    assert tstr_evaluate(Xs, ys, Xte, yte, models={"lr": default_models("classification", Xs)[
        "logistic_regression"]})["real"].isna().all()


def test_tstr_evaluate_regression():
    rng = np.random.default_rng(1)
    Xtr, ytr = regression(800, rng)
    Xte, yte = regression(500, rng)
    table = tstr_evaluate(Xtr, ytr, Xte, yte, X_train=Xtr, y_train=ytr)
    assert set(table["metric"]) == {"r2", "neg_mean_absolute_error"}
    assert set(table["model"]) == {"hist_gradient_boosting", "ridge", "random_forest"}
    r2 = table[table.metric == "r2"].set_index("model")
    assert r2.loc["ridge", "synthetic"] > 0.95
    assert (table[table.metric == "neg_mean_absolute_error"]["synthetic"] < 0).all()
    with pytest.raises(ValueError, match="do not apply"):
        tstr_evaluate(Xtr, ytr, Xte, yte, metrics=["roc_auc"])


def test_tstr_score_metrics_and_regression():
    rng = np.random.default_rng(2)
    X, y = classification(1500, rng)
    Xte, yte = classification(800, rng)
    good, bad = Resampler(X, y), Resampler(X, y, shuffle_labels=True)
    for metric in ("roc_auc", "average_precision", "accuracy"):
        assert tstr_score(good, Xte, yte, metric=metric) > tstr_score(bad, Xte, yte, metric=metric)
    Xr, yr = regression(800, rng)
    Xrt, yrt = regression(300, rng)
    reg = Resampler(Xr, yr)
    assert tstr_score(reg, Xrt, yrt, metric="r2", estimator=LinearRegression()) > 0.95
    assert tstr_score(reg, Xrt, yrt, metric="neg_mean_absolute_error") < 0
    with pytest.raises(ValueError, match="metric"):
        tstr_score(reg, Xrt, yrt, metric="f1")


class WrappedResampler(KernelDensity):
    """An sklearn estimator whose fit keeps rows, so GridSearchCV can clone it."""

    def __init__(self, shuffle_labels=False):
        self.shuffle_labels = shuffle_labels

    def fit(self, X, y=None):
        self.inner_ = Resampler(X.reset_index(drop=True), y.reset_index(drop=True), self.shuffle_labels)
        return self

    def sample(self, n, random_state=None, return_y=False):
        return self.inner_.sample(n, random_state, return_y)


def test_tstr_scorer_in_grid_search():
    rng = np.random.default_rng(3)
    X, y = classification(900, rng)
    search = GridSearchCV(WrappedResampler(), {"shuffle_labels": [False, True]}, cv=3,
                          scoring=tstr_scorer(metric="average_precision"), refit=False).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert scores[0] > scores[1]
    assert tstr_scorer(metric="r2").__name__ == "tstr_r2"


def nullable(X):
    """``X`` with nullable numeric dtypes holding ``pd.NA``, as the synthesizers produce."""
    out = X.copy()
    out["a"] = pd.array(out["a"].to_numpy(), dtype="Float64")
    out.loc[::7, "a"] = pd.NA
    out["k"] = pd.array(np.arange(len(out)) % 5, dtype="Int64")
    out.loc[::5, "k"] = pd.NA
    return out


def test_tstr_with_nullable_numeric_columns():
    # Int64 / Float64 columns with pd.NA used to crash the ColumnTransformer's "num" passthrough
    rng = np.random.default_rng(4)
    X, y = classification(400, rng)
    Xte, yte = classification(200, rng)
    X, Xte = nullable(X), nullable(Xte)
    assert 0.5 < tstr_score(Resampler(X, y), Xte, yte) <= 1.0
    table = tstr_evaluate(X, y, Xte, yte, X_train=X, y_train=y)
    assert table[["synthetic", "real"]].notna().all().all()
    for model in default_models("classification", X).values():  # also when used directly
        assert model.fit(X, y).predict(Xte).shape == (len(Xte),)


def test_default_models_accept_more_categories_than_histgradientboosting_bins():
    from skdpgen.metrics.utility import default_classifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"c": rng.choice([f"k{i}" for i in range(600)], 3000), "v": rng.normal(size=3000)})
    y = (X["v"] > 0).astype(int)
    assert default_classifier(X).fit(X, y).score(X, y) > 0.9  # 600 categories: rare ones are grouped
