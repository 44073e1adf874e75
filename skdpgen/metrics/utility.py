r"""Train-synthetic-test-real (TSTR) utility, usable as a scikit-learn ``scoring=``.

TSTR (Esteban, Hyland and Raetsch 2017; Jordon et al. 2019): fit a downstream model on synthetic
rows, score it on REAL held-out rows, and compare with the same model fitted on the real training
rows (the *ceiling*).  Classification is scored by ROC-AUC and PR-AUC (average precision) from
``predict_proba`` and by accuracy; regression by :math:`R^2` and mean absolute error.

:func:`tstr_score` / :func:`tstr_scorer` take a fitted class-conditional synthesizer (they draw
``sample(n, return_y=True)``), so ``GridSearchCV(synth, ..., scoring=tstr_scorer())`` works;
:func:`tstr_evaluate` takes synthetic and real tables directly and runs a panel of models
(:func:`default_models`).  The scores read real data: they are not differentially private.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from ._columns import check_rows

__all__ = [
    "default_classifier",
    "default_models",
    "default_regressor",
    "tstr_evaluate",
    "tstr_score",
    "tstr_scorer",
]

_CLS_METRICS = ("roc_auc", "average_precision", "accuracy")
_REG_METRICS = ("r2", "neg_mean_absolute_error")
_METRICS = _CLS_METRICS + _REG_METRICS


# HistGradientBoosting's native categorical features take codes 0..254 (max_bins=255)
_MAX_CATEGORIES = 250

def _is_discrete(col: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)


def _to_float(X) -> np.ndarray:
    """Numeric columns as float64 with NaN for missing values (nullable ``Int64``/``Float64`` use ``pd.NA``)."""
    if isinstance(X, pd.DataFrame):
        return X.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(X, dtype=np.float64)


def _float_columns():
    """A transformer that casts numeric columns to float64 (``pd.NA`` -> NaN), keeping their names."""
    return FunctionTransformer(_to_float, feature_names_out="one-to-one")


def _hgb_with_categories(model_class, X, random_state: int):
    """``model_class`` (a HistGradientBoosting estimator) with native categorical support for X's discrete columns."""
    if not isinstance(X, pd.DataFrame):
        return model_class(random_state=random_state)
    cat = [c for c in X.columns if _is_discrete(X[c])]
    num = [c for c in X.columns if c not in cat]
    if not cat:
        return model_class(random_state=random_state)
    prep = ColumnTransformer(
        # HistGradientBoosting takes at most 255 categories: rarer ones are grouped (max_categories)
        [("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                encoded_missing_value=-1, max_categories=_MAX_CATEGORIES), cat),
         ("num", _float_columns(), num)],
        verbose_feature_names_out=False)
    mask = [True] * len(cat) + [False] * len(num)
    return make_pipeline(prep, model_class(categorical_features=mask, random_state=random_state))


def default_classifier(X, random_state: int = 0):
    """HistGradientBoostingClassifier with native categorical support for ``X``'s non-numeric columns."""
    return _hgb_with_categories(HistGradientBoostingClassifier, X, random_state)


def default_regressor(X, random_state: int = 0):
    """HistGradientBoostingRegressor with native categorical support for ``X``'s non-numeric columns."""
    return _hgb_with_categories(HistGradientBoostingRegressor, X, random_state)


def _linear_prep(X):
    """One-hot categorical + imputed, standardised numeric columns (for linear models)."""
    if not isinstance(X, pd.DataFrame):
        return make_pipeline(SimpleImputer(), StandardScaler())
    cat = [c for c in X.columns if _is_discrete(X[c])]
    num = [c for c in X.columns if c not in cat]
    return ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=5), cat),
         ("num", make_pipeline(_float_columns(), SimpleImputer(), StandardScaler()), num)],
        verbose_feature_names_out=False)


def _tree_prep(X):
    if not isinstance(X, pd.DataFrame):
        return SimpleImputer()
    cat = [c for c in X.columns if _is_discrete(X[c])]
    num = [c for c in X.columns if c not in cat]
    return ColumnTransformer(
        [("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                encoded_missing_value=-1), cat),
         ("num", make_pipeline(_float_columns(), SimpleImputer()), num)],
        verbose_feature_names_out=False)


def default_models(task: str, X=None, random_state: int = 0) -> dict:
    """The model panel of :func:`tstr_evaluate`: name -> unfitted estimator.

    Classification: ``"hist_gradient_boosting"`` (:func:`default_classifier`),
    ``"logistic_regression"`` (one-hot + standardised inputs, ``max_iter=1000``) and
    ``"random_forest"`` (100 trees).  Regression: ``"hist_gradient_boosting"``,
    ``"ridge"`` and ``"random_forest"`` likewise.  ``X`` (an example table) decides which columns
    are treated as categorical (non-numeric dtypes).
    """
    if task == "classification":
        return {"hist_gradient_boosting": default_classifier(X, random_state),
                "logistic_regression": make_pipeline(_linear_prep(X), LogisticRegression(max_iter=1000)),
                "random_forest": make_pipeline(_tree_prep(X), RandomForestClassifier(
                    n_estimators=100, min_samples_leaf=2, random_state=random_state, n_jobs=1))}
    if task == "regression":
        return {"hist_gradient_boosting": default_regressor(X, random_state),
                "ridge": make_pipeline(_linear_prep(X), Ridge()),
                "random_forest": make_pipeline(_tree_prep(X), RandomForestRegressor(
                    n_estimators=100, min_samples_leaf=2, random_state=random_state, n_jobs=1))}
    raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")


def _as_object_frame(X):
    """Discrete columns as strings; numeric ones as float64 with NaN (nullable dtypes hold ``pd.NA``)."""
    if isinstance(X, pd.DataFrame):
        out = X.copy()
        for c in out.columns:
            if _is_discrete(out[c]):
                out[c] = out[c].astype(object).where(out[c].notna(), None).astype(str)
            else:
                out[c] = out[c].to_numpy(dtype=np.float64, na_value=np.nan)
        return out
    return X


def _infer_task(y) -> str:
    y = pd.Series(np.asarray(y))
    if pd.api.types.is_float_dtype(y) and y.nunique(dropna=True) > 20:
        return "regression"
    return "classification"


def _scores(model, X_real, y_real, metrics, task) -> dict:
    """Scores of a fitted ``model`` on real rows, one per metric."""
    y_real = np.asarray(y_real)
    out = {}
    if task == "regression":
        pred = model.predict(X_real)
        for m in metrics:
            out[m] = float(r2_score(y_real, pred) if m == "r2" else -mean_absolute_error(y_real, pred))
        return out
    if "accuracy" in metrics:
        out["accuracy"] = float(accuracy_score(y_real, model.predict(X_real)))
    if any(m in metrics for m in ("roc_auc", "average_precision")):
        proba = model.predict_proba(X_real)
        classes = np.asarray(model.classes_)
        if len(classes) == 2:
            pos = y_real == classes[1]
            if "roc_auc" in metrics:
                out["roc_auc"] = float(roc_auc_score(pos, proba[:, 1]))
            if "average_precision" in metrics:
                out["average_precision"] = float(average_precision_score(pos, proba[:, 1]))
        else:
            if "roc_auc" in metrics:
                out["roc_auc"] = float(roc_auc_score(y_real, proba, multi_class="ovr", labels=classes))
            if "average_precision" in metrics:
                onehot = (y_real[:, None] == classes[None, :]).astype(float)
                out["average_precision"] = float(average_precision_score(onehot, proba, average="macro"))
    return {m: out[m] for m in metrics}


def _constant_scores(label, y_real, metrics) -> dict:
    """Scores of a constant predictor (the synthetic data held one class only)."""
    y_real = np.asarray(y_real)
    share = float(np.mean(y_real == label))
    return {m: (share if m == "accuracy" else 0.5 if m == "roc_auc" else share) for m in metrics}


def _fit_score(model, X_fit, y_fit, X_real, y_real, metrics, task, n_threads) -> dict:
    y_fit = np.asarray(y_fit)
    if task == "classification" and np.unique(y_fit).size < 2:
        return _constant_scores(y_fit[0], y_real, metrics)
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        model.fit(X_fit, y_fit)
        return _scores(model, X_real, y_real, metrics, task)


def tstr_score(synthesizer, X_test, y_test, *, estimator=None, metric: str = "roc_auc",
               n_samples: int | None = None, random_state: int = 0, n_threads: int | None = 1) -> float:
    """Fit ``estimator`` on rows sampled from a fitted class-conditional synthesizer; score on real data.

    Parameters
    ----------
    synthesizer : fitted synthesizer with ``sample(n, random_state=, return_y=True)``
    X_test, y_test : real held-out rows and labels
    estimator : classifier or regressor, default=None
        Cloned before fitting; default :func:`default_classifier` (:func:`default_regressor` for
        the regression metrics).
    metric : {"roc_auc", "average_precision", "accuracy", "r2", "neg_mean_absolute_error"}
        ROC-AUC and PR-AUC use ``predict_proba`` (one-vs-rest macro ROC-AUC for several classes);
        ``"r2"`` and ``"neg_mean_absolute_error"`` make it a regression task (larger is better for
        every metric, as sklearn scorers require).
    n_samples : int, default=None
        Synthetic rows to draw; default ``len(X_test)``.
    n_threads : int or None, default=1
        OpenMP threads of the classifier (``None``: no limit).  One by default: with torch's
        OpenMP runtime loaded beside scikit-learn's, HistGradientBoosting's fits stalled for
        seconds on small machines.

    Raises
    ------
    ValueError
        If ``X_test`` or ``y_test`` has no rows, or ``metric`` is unknown.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    check_rows(X_test=X_test, y_test=y_test)
    task = "regression" if metric in _REG_METRICS else "classification"
    n = int(n_samples or len(X_test))
    X_syn, y_syn = synthesizer.sample(n, random_state=random_state, return_y=True)
    check_rows(**{"the synthesizer's sample": X_syn})
    X_syn, X_real = _as_object_frame(X_syn), _as_object_frame(X_test)
    if estimator is not None:
        model = clone(estimator)
    else:
        model = (default_regressor if task == "regression" else default_classifier)(X_syn, random_state)
    return _fit_score(model, X_syn, y_syn, X_real, y_test, (metric,), task, n_threads)[metric]


def tstr_scorer(estimator=None, metric: str = "roc_auc", n_samples: int | None = None, random_state: int = 0,
                n_threads: int | None = 1):
    """A scorer ``scorer(synthesizer, X, y)`` for ``GridSearchCV(..., scoring=tstr_scorer())``.

    See :func:`tstr_score` for the parameters (``metric="r2"`` for a regression target).
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")

    def scorer(synthesizer, X, y):
        return tstr_score(synthesizer, X, y, estimator=estimator, metric=metric, n_samples=n_samples,
                          random_state=random_state, n_threads=n_threads)

    scorer.__name__ = f"tstr_{metric}"
    return scorer


def tstr_evaluate(X_synthetic, y_synthetic, X_test, y_test, *, X_train=None, y_train=None, task: str = "auto",
                  models: dict | None = None, metrics=None, random_state: int = 0,
                  n_threads: int | None = 1) -> pd.DataFrame:
    """Train-synthetic-test-real with a panel of models, and the real-data ceiling.

    Parameters
    ----------
    X_synthetic, y_synthetic : synthetic features and target
    X_test, y_test : real held-out rows (never seen by the synthesizer)
    X_train, y_train : real training rows, optional
        When given, every model is also fitted on them and scored on ``X_test``: the ceiling.
    task : {"auto", "classification", "regression"}
        ``"auto"``: regression for a float target with more than 20 distinct values.
    models : dict of name -> estimator, optional
        Default :func:`default_models` (cloned before each fit).
    metrics : sequence of str, optional
        Default ``("roc_auc", "average_precision", "accuracy")`` for classification and
        ``("r2", "neg_mean_absolute_error")`` for regression.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``metric``, ``synthetic`` (TSTR), ``real`` (ceiling, NaN without real
        training rows), ``gap`` (``real - synthetic``).

    Raises
    ------
    ValueError
        If a table given (``X_synthetic``, ``X_test``, ``X_train`` or their targets) has no rows, or
        a metric does not apply to the task.
    """
    check_rows(X_synthetic=X_synthetic, y_synthetic=y_synthetic, X_test=X_test, y_test=y_test, X_train=X_train,
               y_train=y_train)
    if task == "auto":
        task = _infer_task(y_test)
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'auto', 'classification' or 'regression', got {task!r}")
    if metrics is None:
        metrics = _CLS_METRICS if task == "classification" else _REG_METRICS
    allowed = _CLS_METRICS if task == "classification" else _REG_METRICS
    bad = [m for m in metrics if m not in allowed]
    if bad:
        raise ValueError(f"metrics {bad} do not apply to {task}; use some of {allowed}")
    X_syn, X_te = _as_object_frame(X_synthetic), _as_object_frame(X_test)
    if isinstance(X_te, pd.DataFrame) and isinstance(X_syn, pd.DataFrame):
        X_syn = X_syn[list(X_te.columns)]
    panel = models if models is not None else default_models(task, X_syn, random_state)
    rows = []
    for name, est in panel.items():
        syn = _fit_score(clone(est), X_syn, y_synthetic, X_te, y_test, metrics, task, n_threads)
        if X_train is not None:
            real = _fit_score(clone(est), _as_object_frame(X_train), y_train, X_te, y_test, metrics, task,
                              n_threads)
        else:
            real = dict.fromkeys(metrics, np.nan)
        rows += [(name, m, syn[m], real[m], real[m] - syn[m]) for m in metrics]
    return pd.DataFrame(rows, columns=["model", "metric", "synthetic", "real", "gap"])
