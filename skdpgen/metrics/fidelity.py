r"""Fidelity of synthetic data: how closely it reproduces the real table's distribution.

All functions take a real and a synthetic table (DataFrames with the same columns; arrays get
columns ``x0, x1, ...``) and an optional schema.  With a schema, numeric columns are binned over
their PUBLIC bounds and categorical columns use the declared categories; without one, the bins and
categories are read from the REAL table.  Either way these metrics read the real rows: their
output is **not** differentially private.  Evaluation is not a release; do not publish the
numbers of a private table as if they were protected.  Every function raises a ``ValueError``
naming the table ("real has 0 rows", "synthetic has 0 rows") when a table has no rows: two empty
tables do not "match perfectly".

Metrics
-------
* :func:`marginal_tvd`: total-variation distance of each 1-way marginal,
  :math:`\mathrm{TVD}(p, q) = \tfrac12 \sum_b |p_b - q_b|` over the bins :math:`b`.
* :func:`pairwise_tvd`: the same over the joint bins of every pair of columns (2-way marginals).
* :func:`association_matrix` / :func:`association_difference`: a mixed association matrix
  (Pearson correlation for numeric pairs, Cramer's V for categorical pairs, the correlation ratio
  :math:`\eta` for numeric-categorical pairs) and the absolute difference between real and
  synthetic.
* :func:`mmd`: the (unbiased) squared maximum mean discrepancy under a FIXED Gaussian kernel.
* :func:`detection_auc`: ROC-AUC :math:`A` of a classifier trained to tell real rows from synthetic
  ones (cross-validated), reported as :math:`\max(A, 1 - A)`: 0.5 means indistinguishable, 1
  perfectly told apart; a raw :math:`A` far below 0.5 means copied real rows (and warns).
* :func:`column_summary`: one row per column (TVD, missing shares, means / standard deviations and
  the Kolmogorov-Smirnov statistic of numeric columns).
"""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from ._columns import as_frame, check_rows, code_matrix, layout_columns, numeric_values, unit_matrix

__all__ = [
    "association_difference",
    "association_matrix",
    "column_summary",
    "detection_auc",
    "marginal_tvd",
    "mmd",
    "pairwise_tvd",
]


def _frames(real, synthetic):
    """Both tables as DataFrames (an array ``synthetic`` gets the real column names); refuses empty tables."""
    check_rows(real=real, synthetic=synthetic)
    real = as_frame(real)
    synthetic = as_frame(synthetic, columns=real.columns if not isinstance(synthetic, pd.DataFrame) else None)
    return real, synthetic


def _probs(codes: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(codes, minlength=k) / max(len(codes), 1)


def marginal_tvd(real, synthetic, schema=None, *, n_bins: int = 20, columns=None) -> pd.Series:
    r"""Total-variation distance between the real and synthetic 1-way marginal of each column.

    Parameters
    ----------
    real, synthetic : DataFrame or array-like
        The tables (same columns; extra synthetic columns are ignored).
    schema : Schema or dict, optional
        Public bounds / categories for the bins (see the module docstring).
    n_bins : int, default=20
        Bins of a numeric column.
    columns : list of str, optional
        Restrict to these columns.

    Returns
    -------
    pandas.Series
        :math:`\tfrac12 \sum_b |p_b - q_b|` per column, in [0, 1] (0: identical marginals).
    """
    real, synthetic = _frames(real, synthetic)
    layout = layout_columns(real, synthetic, schema, n_bins, columns)
    cr, cs = code_matrix(real, layout), code_matrix(synthetic, layout)
    out = {c.name: 0.5 * np.abs(_probs(cr[:, j], c.n_codes) - _probs(cs[:, j], c.n_codes)).sum()
           for j, c in enumerate(layout)}
    return pd.Series(out, name="tvd", dtype=float)


def pairwise_tvd(real, synthetic, schema=None, *, n_bins: int = 10, columns=None) -> pd.DataFrame:
    r"""Total-variation distance between the real and synthetic 2-way marginals of all column pairs.

    Numeric columns use ``n_bins`` bins (default 10, coarser than the 1-way default so that the
    joint tables are not dominated by sampling noise).

    Returns
    -------
    pandas.DataFrame
        Columns ``column_a``, ``column_b``, ``tvd``; one row per unordered pair.
    """
    real, synthetic = _frames(real, synthetic)
    layout = layout_columns(real, synthetic, schema, n_bins, columns)
    cr, cs = code_matrix(real, layout), code_matrix(synthetic, layout)
    rows = []
    for i, j in combinations(range(len(layout)), 2):
        ki, kj = layout[i].n_codes, layout[j].n_codes
        pr = _probs(cr[:, i] * kj + cr[:, j], ki * kj)
        ps = _probs(cs[:, i] * kj + cs[:, j], ki * kj)
        rows.append((layout[i].name, layout[j].name, 0.5 * np.abs(pr - ps).sum()))
    return pd.DataFrame(rows, columns=["column_a", "column_b", "tvd"])


def _cramers_v(a: np.ndarray, b: np.ndarray, ka: int, kb: int) -> float:
    table = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb).astype(np.float64)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    n = table.sum()
    r, c = table.shape
    if n == 0 or min(r, c) < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = ((table - expected) ** 2 / expected).sum()
    return float(np.sqrt(chi2 / (n * (min(r, c) - 1))))


def _correlation_ratio(x: np.ndarray, groups: np.ndarray, k: int) -> float:
    ok = np.isfinite(x)
    x, groups = x[ok], groups[ok]
    if x.size < 2:
        return 0.0
    total = ((x - x.mean()) ** 2).sum()
    if total <= 0:
        return 0.0
    cnt = np.bincount(groups, minlength=k)
    sums = np.bincount(groups, weights=x, minlength=k)
    means = np.divide(sums, cnt, out=np.zeros(k), where=cnt > 0)
    between = (cnt * (means - x.mean()) ** 2).sum()
    return float(np.sqrt(min(between / total, 1.0)))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def association_matrix(data, schema=None, *, reference=None, n_bins: int = 20, columns=None) -> pd.DataFrame:
    r"""Mixed association matrix of a table.

    * numeric-numeric: Pearson correlation :math:`r \in [-1, 1]` (rows with a missing value in
      either column dropped);
    * categorical-categorical: Cramer's V :math:`\sqrt{\chi^2 / (n (\min(r, c) - 1))} \in [0, 1]`
      (missing values and unseen categories are categories of their own);
    * numeric-categorical: the correlation ratio
      :math:`\eta = \sqrt{\sum_g n_g (\bar x_g - \bar x)^2 / \sum_i (x_i - \bar x)^2} \in [0, 1]`.

    Which columns are numeric comes from ``schema`` (or, without one, from ``reference``, the real
    table, so that a real and a synthetic table are read the same way).  A constant column has
    association 0 with every other.
    """
    check_rows(data=data, reference=reference)
    data = as_frame(data)
    ref = data if reference is None else as_frame(reference)
    layout = layout_columns(ref, data, schema, n_bins, columns)
    codes = code_matrix(data, layout)
    values = {c.name: numeric_values(data[c.name]) for c in layout if c.kind == "numeric"}
    names = [c.name for c in layout]
    m = np.eye(len(layout))
    for i, j in combinations(range(len(layout)), 2):
        a, b = layout[i], layout[j]
        if a.kind == "numeric" and b.kind == "numeric":
            v = _pearson(values[a.name], values[b.name])
        elif a.kind == "numeric":
            v = _correlation_ratio(values[a.name], codes[:, j], b.n_codes)
        elif b.kind == "numeric":
            v = _correlation_ratio(values[b.name], codes[:, i], a.n_codes)
        else:
            v = _cramers_v(codes[:, i], codes[:, j], a.n_codes, b.n_codes)
        m[i, j] = m[j, i] = v
    return pd.DataFrame(m, index=names, columns=names)


def association_difference(real, synthetic, schema=None, *, n_bins: int = 20, columns=None) -> pd.DataFrame:
    """``|association_matrix(real) - association_matrix(synthetic)|`` (both read with the real layout).

    Summarise it by the mean over the upper triangle (see :func:`skdpgen.metrics.evaluate`).
    """
    real, synthetic = _frames(real, synthetic)
    a = association_matrix(real, schema, n_bins=n_bins, columns=columns)
    b = association_matrix(synthetic, schema, reference=real, n_bins=n_bins, columns=columns)
    return (a - b).abs()


def _subsample(n: int, n_max: int | None, rng: np.random.Generator) -> np.ndarray:
    if n_max is None or n <= n_max:
        return np.arange(n)
    return np.sort(rng.choice(n, size=n_max, replace=False))


def mmd(real, synthetic, schema=None, *, length_scale: float = 0.5, max_rows: int | None = 2000,
        random_state: int = 0, columns=None) -> float:
    r"""Unbiased squared maximum mean discrepancy under a fixed Gaussian kernel.

    Each row is mapped so that every column contributes at most 1 to a squared distance (numeric
    columns scaled to [0, 1] by the public bounds or the real range, with a missing indicator;
    categorical columns one-hot over :math:`\sqrt 2`), and

    .. math::

        k(x, x') = \exp\!\left(-\frac{\|x - x'\|^2}{2 \ell^2 G}\right), \qquad
        \widehat{\mathrm{MMD}}^2 = \frac{\sum_{i \ne i'} k(x_i, x_{i'})}{m(m-1)}
        + \frac{\sum_{j \ne j'} k(y_j, y_{j'})}{n(n-1)} - \frac{2}{mn}\sum_{i,j} k(x_i, y_j),

    with :math:`G` the number of columns and :math:`\ell` = ``length_scale`` (the same kernel
    whatever the synthesizer, so values are comparable across synthesizers on one table).  The
    unbiased estimate can be slightly negative when the distributions agree.

    Parameters
    ----------
    max_rows : int or None, default=2000
        Random subsample of each table (the cost is quadratic).
    """
    real, synthetic = _frames(real, synthetic)
    if not length_scale > 0:
        raise ValueError(f"length_scale must be > 0, got {length_scale!r}")
    layout = layout_columns(real, synthetic, schema, 20, columns)
    rng = np.random.default_rng(random_state)
    X = unit_matrix(real.iloc[_subsample(len(real), max_rows, rng)], layout)
    Y = unit_matrix(synthetic.iloc[_subsample(len(synthetic), max_rows, rng)], layout)
    if len(X) < 2 or len(Y) < 2:
        raise ValueError("mmd needs at least two rows in each table")
    gamma = 1.0 / (2.0 * length_scale**2 * max(len(layout), 1))

    def gram(A, B):
        d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
        return np.exp(-gamma * np.maximum(d2, 0.0))

    kxx, kyy, kxy = gram(X, X), gram(Y, Y), gram(X, Y)
    m, n = len(X), len(Y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def _detection_features(frame: pd.DataFrame, layout, binned: bool = False) -> np.ndarray:
    cols = []
    for c in layout:
        if c.kind == "numeric" and not binned:
            cols.append(c.unit(frame[c.name]) if c.lo is not None else numeric_values(frame[c.name]))
        else:
            cols.append(c.codes(frame[c.name]).astype(np.float64))
    return np.column_stack(cols) if cols else np.zeros((len(frame), 0))


def _copy_threshold(n: int) -> float:
    r"""Raw detection AUC below which copied rows, not noise, are the likely explanation.

    Six standard errors of the Mann-Whitney AUC of ``n`` against ``n`` rows under no difference,
    :math:`\sqrt{(2n + 1) / (12 n^2)}`, and at least 0.05, below 0.5 (out-of-fold AUCs of
    independent samples spread about 1.5 times that standard error).
    """
    se = np.sqrt((2 * n + 1) / (12.0 * n * n))
    return 0.5 - max(0.05, 6.0 * se)


def detection_auc(real, synthetic, schema=None, *, estimator=None, cv: int = 3, max_rows: int | None = 10_000,
                  random_state: int = 0, n_threads: int | None = 1, columns=None, binned: bool = False,
                  n_bins: int = 20, symmetric: bool = True) -> float:
    r"""How well a classifier tells real rows from synthetic rows: symmetrised cross-validated ROC-AUC.

    Equal numbers of real and synthetic rows (at most ``max_rows`` each, drawn at random) are
    encoded with the same layout (numeric columns scaled, categorical columns as integer codes that
    a gradient-boosting model treats as categories), and each row's out-of-fold probability of
    being synthetic is scored by ROC-AUC against the labels (real 0, synthetic 1): the raw AUC
    :math:`A`.  The function returns :math:`\max(A, 1 - A)` (lower is better):

    * 0.5: the classifier cannot tell the tables apart, as for an independent sample of the real
      distribution (up to noise of order :math:`1/\sqrt{n}`);
    * towards 1: the tables are told apart, from either side.  :math:`A` well **above** 0.5: the
      synthetic distribution differs from the real one.  :math:`A` well **below** 0.5: the
      synthetic rows are copies or near-copies of the real (training) rows.  A row present in both
      tables sits in a training fold with one label and in the test fold with the other, so a
      classifier that has learnt the training rows predicts the wrong class exactly on the copies;
      on a 400-row Gaussian-mixture table an exact copy scored :math:`A \approx 0.15`, half-copied
      data and a bootstrap about 0.3, an independent sample 0.5.  That is memorisation, not a
      better fit, and the symmetrised value counts it as detected (the copy scores about 0.85,
      worse than the independent sample).

    A raw AUC far below 0.5 (more than six null standard errors, and at least 0.05, below it) also
    raises a :class:`UserWarning` saying that the synthetic rows look like copies of real rows;
    :func:`~skdpgen.metrics.distance_to_closest_record` with a holdout measures the copying.

    Parameters
    ----------
    estimator : classifier, optional
        Default: :class:`~sklearn.ensemble.HistGradientBoostingClassifier` with the categorical
        columns declared native categories.
    cv : int, default=3
        Stratified folds.
    binned : bool, default=False
        Give the classifier the bin codes of numeric columns (``n_bins`` bins, as in
        :func:`marginal_tvd`) instead of their values: the test then ignores differences within a
        bin, e.g. a synthesizer that decodes bins to their midpoints (non-integer ages) is not
        caught by that alone.
    symmetric : bool, default=True
        Return :math:`\max(A, 1 - A)`; ``False`` returns the raw AUC :math:`A` (values below 0.5
        then mean copied rows, not a better synthesizer: do not rank synthesizers by it).

    Returns
    -------
    float
        :math:`\max(A, 1 - A) \in [0.5, 1]` (or :math:`A \in [0, 1]` with ``symmetric=False``).

    Raises
    ------
    ValueError
        If either table has no rows, or fewer than ``cv`` rows.
    """
    real, synthetic = _frames(real, synthetic)
    layout = layout_columns(real, synthetic, schema, n_bins, columns)
    rng = np.random.default_rng(random_state)
    n = min(len(real), len(synthetic))
    if max_rows is not None:
        n = min(n, int(max_rows))
    if n < cv:
        raise ValueError(f"detection_auc needs at least cv={cv} rows in each table")
    r = real.iloc[np.sort(rng.choice(len(real), n, replace=False))]
    s = synthetic.iloc[np.sort(rng.choice(len(synthetic), n, replace=False))]
    X = np.vstack([_detection_features(r, layout, binned), _detection_features(s, layout, binned)])
    y = np.r_[np.zeros(n), np.ones(n)]
    if estimator is None:
        mask = [(binned or c.kind == "categorical") and c.n_codes <= 255 for c in layout]
        estimator = HistGradientBoostingClassifier(categorical_features=mask if any(mask) else None,
                                                   random_state=random_state)
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        proba = cross_val_predict(estimator, X, y, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, proba))
    if auc < _copy_threshold(n):
        warnings.warn(f"detection_auc: the raw AUC is {auc:.3f}, far below 0.5: the synthetic rows look like "
                      "copies or near-copies of real rows (memorisation; see distance_to_closest_record), "
                      f"not like a better fit.  Reported as max(AUC, 1 - AUC) = {max(auc, 1.0 - auc):.3f}"
                      + ("" if symmetric else " with symmetric=True") + ".", UserWarning, stacklevel=2)
    return max(auc, 1.0 - auc) if symmetric else auc


def column_summary(real, synthetic, schema=None, *, n_bins: int = 20, columns=None) -> pd.DataFrame:
    """One row per column: kind, 1-way TVD, missing shares, and for numeric columns the real and
    synthetic mean and standard deviation and the two-sample Kolmogorov-Smirnov statistic; for
    categorical columns the number of categories present and the share of synthetic values outside
    the known categories."""
    real, synthetic = _frames(real, synthetic)
    layout = layout_columns(real, synthetic, schema, n_bins, columns)
    tvd = marginal_tvd(real, synthetic, schema, n_bins=n_bins, columns=columns)
    rows = []
    for c in layout:
        row = {"column": c.name, "kind": c.kind, "tvd": tvd[c.name],
               "missing_real": float(real[c.name].isna().mean()),
               "missing_synthetic": float(synthetic[c.name].isna().mean())}
        if c.kind == "numeric":
            xr, xs = numeric_values(real[c.name]), numeric_values(synthetic[c.name])
            xr, xs = xr[np.isfinite(xr)], xs[np.isfinite(xs)]
            row.update(mean_real=xr.mean() if xr.size else np.nan, mean_synthetic=xs.mean() if xs.size else np.nan,
                       std_real=xr.std() if xr.size else np.nan, std_synthetic=xs.std() if xs.size else np.nan,
                       ks=ks_2samp(xr, xs).statistic if xr.size and xs.size else np.nan)
        else:
            k = len(c.categories)
            cr, cs = c.codes(real[c.name]), c.codes(synthetic[c.name])
            row.update(n_categories_real=int(np.unique(cr[cr < k]).size),
                       n_categories_synthetic=int(np.unique(cs[cs < k]).size),
                       unknown_synthetic=float(np.mean(cs == k)))
        rows.append(row)
    return pd.DataFrame(rows)
