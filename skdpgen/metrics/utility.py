"""Train-synthetic-test-real (TSTR) utility, usable as a scikit-learn ``scoring=``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

__all__ = ["default_classifier", "tstr_score", "tstr_scorer"]

_METRICS = ("roc_auc", "average_precision", "accuracy")


def _is_discrete(col: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)


def default_classifier(X, random_state: int = 0):
    """HistGradientBoostingClassifier with native categorical support for ``X``'s non-numeric columns."""
    if not isinstance(X, pd.DataFrame):
        return HistGradientBoostingClassifier(random_state=random_state)
    cat = [c for c in X.columns if _is_discrete(X[c])]
    num = [c for c in X.columns if c not in cat]
    if not cat:
        return HistGradientBoostingClassifier(random_state=random_state)
    prep = ColumnTransformer(
        [("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                encoded_missing_value=-1), cat),
         ("num", "passthrough", num)],
        verbose_feature_names_out=False)
    mask = [True] * len(cat) + [False] * len(num)
    return make_pipeline(prep, HistGradientBoostingClassifier(categorical_features=mask,
                                                              random_state=random_state))


def _as_object_frame(X):
    if isinstance(X, pd.DataFrame):
        out = X.copy()
        for c in out.columns:
            if _is_discrete(out[c]):
                out[c] = out[c].astype(object).where(out[c].notna(), None).astype(str)
        return out
    return X


def tstr_score(synthesizer, X_test, y_test, *, estimator=None, metric: str = "roc_auc",
               n_samples: int | None = None, random_state: int = 0, n_threads: int | None = 1) -> float:
    """Fit ``estimator`` on rows sampled from a fitted class-conditional synthesizer; score on real data.

    Parameters
    ----------
    synthesizer : fitted synthesizer with ``sample(n, random_state=, return_y=True)``
    X_test, y_test : real held-out rows and labels
    estimator : classifier, default=None
        Cloned before fitting; default :func:`default_classifier`.
    metric : {"roc_auc", "average_precision", "accuracy"}
        ROC-AUC and PR-AUC use ``predict_proba`` (one-vs-rest macro ROC-AUC for several classes).
    n_samples : int, default=None
        Synthetic rows to draw; default ``len(X_test)``.
    n_threads : int or None, default=1
        OpenMP threads of the classifier (``None``: no limit).  One by default: with torch's
        OpenMP runtime loaded beside scikit-learn's, HistGradientBoosting's fits stalled for
        seconds on small machines.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    n = int(n_samples or len(X_test))
    X_syn, y_syn = synthesizer.sample(n, random_state=random_state, return_y=True)
    X_syn, X_real = _as_object_frame(X_syn), _as_object_frame(X_test)
    model = clone(estimator) if estimator is not None else default_classifier(X_syn, random_state)
    y_syn = np.asarray(y_syn)
    y_real = np.asarray(y_test)
    if np.unique(y_syn).size < 2:
        # one class only: a constant predictor
        if metric == "accuracy":
            return float(np.mean(y_real == y_syn[0]))
        return 0.5 if metric == "roc_auc" else float(np.mean(y_real == y_syn[0]))
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        model.fit(X_syn, y_syn)
        if metric == "accuracy":
            return float(accuracy_score(y_real, model.predict(X_real)))
        proba = model.predict_proba(X_real)
    classes = np.asarray(model.classes_)
    if len(classes) == 2:
        pos = y_real == classes[1]
        return float(roc_auc_score(pos, proba[:, 1]) if metric == "roc_auc"
                     else average_precision_score(pos, proba[:, 1]))
    if metric == "roc_auc":
        return float(roc_auc_score(y_real, proba, multi_class="ovr", labels=classes))
    onehot = (y_real[:, None] == classes[None, :]).astype(float)
    return float(average_precision_score(onehot, proba, average="macro"))


def tstr_scorer(estimator=None, metric: str = "roc_auc", n_samples: int | None = None, random_state: int = 0,
                n_threads: int | None = 1):
    """A scorer ``scorer(synthesizer, X, y)`` for ``GridSearchCV(..., scoring=tstr_scorer())``."""
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")

    def scorer(synthesizer, X, y):
        return tstr_score(synthesizer, X, y, estimator=estimator, metric=metric, n_samples=n_samples,
                          random_state=random_state, n_threads=n_threads)

    scorer.__name__ = f"tstr_{metric}"
    return scorer
