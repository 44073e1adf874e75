"""Shared column handling of the metrics: one binning / encoding of real and synthetic tables.

Every metric compares a real and a synthetic table through the same per-column layout:

* **numeric** columns are binned into ``n_bins`` bins.  With a schema the edges come from the
  column's PUBLIC bounds (linear, or log-spaced when the column's ``scale`` resolves to ``"log"``;
  an integer column with at most ``n_bins`` values gets one bin per value); without a schema they
  are quantiles of the REAL column.  Values outside the edges fall into the outer bins; a missing
  value has a bin of its own.
* **categorical** columns map each declared category (or, without a schema, each value seen in the
  real column) to a code; values seen in neither get an "other" code, missing values a code of
  their own.

Metrics read the real rows: their output is NOT differentially private (evaluation is not a
release).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import Schema

__all__ = ["ColumnLayout", "as_frame", "check_rows", "layout_columns"]


@dataclass(frozen=True)
class ColumnLayout:
    """How one column is binned (``edges``) or coded (``categories``)."""

    name: str
    kind: str  # "numeric" or "categorical"
    edges: np.ndarray | None = None
    categories: tuple | None = None
    lo: float | None = None
    hi: float | None = None
    log: bool = False

    @property
    def n_codes(self) -> int:
        """Number of codes: bins (or categories + "other") plus one for missing values."""
        if self.kind == "numeric":
            return len(self.edges) - 1 + 1
        return len(self.categories) + 2

    def labels(self) -> list[str]:
        """Human-readable label of each code."""
        if self.kind == "numeric":
            e = self.edges
            return [f"[{e[i]:.4g}, {e[i + 1]:.4g})" for i in range(len(e) - 1)] + ["(missing)"]
        return [str(c) for c in self.categories] + ["(other)", "(missing)"]

    def codes(self, col: pd.Series) -> np.ndarray:
        """Integer codes in ``[0, n_codes)`` of a column."""
        if self.kind == "numeric":
            x = numeric_values(col)
            nb = len(self.edges) - 1
            code = np.clip(np.searchsorted(self.edges[1:-1], x, side="right"), 0, nb - 1)
            return np.where(np.isnan(x), nb, code).astype(np.intp)
        k = len(self.categories)
        values = col.to_numpy(dtype=object)
        missing = pd.isna(col).to_numpy()
        idx = _index_of(self.categories, values)
        idx = np.where(idx < 0, k, idx)
        return np.where(missing, k + 1, idx).astype(np.intp)

    def unit(self, col: pd.Series) -> np.ndarray:
        """Numeric column scaled to [0, 1] with the layout's bounds (NaN kept)."""
        x = numeric_values(col)
        lo, hi = self.lo, self.hi
        if self.log:
            z = np.log1p(np.clip(x, lo, hi) - lo) / np.log1p(hi - lo)
        else:
            z = (np.clip(x, lo, hi) - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
        return z


def numeric_values(col: pd.Series) -> np.ndarray:
    """A column as float64 (non-numbers and missing values become NaN)."""
    return pd.to_numeric(pd.Series(col), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _index_of(categories: tuple, values: np.ndarray) -> np.ndarray:
    """Position of each value among ``categories`` (-1 if absent); numbers match across int/float/str."""
    table: dict = {}
    for i, c in enumerate(categories):
        table.setdefault(c, i)
        table.setdefault(str(c), i)
        if isinstance(c, (int, float, np.number)) and not isinstance(c, bool) and float(c).is_integer():
            table.setdefault(str(int(c)), i)
            table.setdefault(float(c), i)
    ser = pd.Series(values, dtype=object)
    try:
        idx = ser.map(table)
    except TypeError:
        idx = pd.Series(np.nan, index=ser.index)
    out = idx.fillna(-1).to_numpy(dtype=np.float64).astype(np.intp)
    for j in np.flatnonzero(out < 0):
        v = values[j]
        if v is None:
            continue
        s = str(v)
        i = table.get(s, -1)
        if i < 0:
            try:
                i = table.get(float(s), -1)
            except ValueError:
                pass
        out[j] = i
    return out


def _hashable(v) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def as_frame(X, columns=None) -> pd.DataFrame:
    """A DataFrame view of ``X`` (arrays get columns ``x0, x1, ...`` or ``columns``)."""
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr[:, None]
    names = list(columns) if columns is not None else [f"x{i}" for i in range(arr.shape[1])]
    return pd.DataFrame(arr, columns=names)


def check_rows(**tables) -> None:
    """Raise a ``ValueError`` naming the first of ``tables`` (name=table) that has no rows.

    Every metric compares tables of rows: with an empty one a TVD or an association difference
    would be a meaningless number (two empty tables would "match perfectly"), so the metrics
    refuse it.  ``None`` values (optional tables not given) are skipped.
    """
    for name, table in tables.items():
        if table is None:
            continue
        try:
            n = len(table)
        except TypeError:  # a scalar: not a table, left to the metric's own checks
            continue
        if n == 0:
            raise ValueError(f"{name} has 0 rows: the metrics need a non-empty table")


def _is_numeric_col(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def layout_columns(real: pd.DataFrame, synthetic: pd.DataFrame | None = None, schema=None,
                   n_bins: int = 20, columns=None) -> list[ColumnLayout]:
    """The layout of each column of ``real`` (restricted to ``columns`` when given).

    With a schema (a :class:`~skdpgen.Schema` or its dict form) the public bounds and categories
    are used; columns absent from the schema, and all columns without one, are laid out from the
    REAL data (quantile edges, observed categories).  A numeric column with at most ``n_bins``
    distinct real values is treated as categorical when there is no schema.
    """
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    n_bins = int(n_bins)
    sch = None if schema is None else Schema.coerce(schema)
    names = list(real.columns) if columns is None else list(columns)
    if synthetic is not None:
        missing = [c for c in names if c not in synthetic.columns]
        if missing:
            raise ValueError(f"the synthetic table lacks columns {missing}")
    out = []
    for name in names:
        col = real[name]
        spec = sch[name] if sch is not None and name in sch else None
        if spec is not None and spec.is_numeric:
            lo, hi = spec.bounds
            log = spec.resolved_scale == "log"
            if spec.kind == "integer" and hi - lo + 1 <= n_bins:
                edges = np.arange(lo, hi + 2) - 0.5
            elif log:
                edges = lo - 1.0 + np.exp(np.linspace(0.0, np.log1p(hi - lo), n_bins + 1))
                edges[0], edges[-1] = lo, hi
            else:
                edges = np.linspace(lo, hi, n_bins + 1)
            out.append(ColumnLayout(name, "numeric", edges=edges, lo=lo, hi=hi, log=log))
        elif spec is not None:
            out.append(ColumnLayout(name, "categorical", categories=tuple(spec.categories)))
        else:
            x = numeric_values(col) if _is_numeric_col(col) else None
            finite = None if x is None else x[np.isfinite(x)]
            if finite is not None and finite.size and np.unique(finite).size > n_bins:
                q = np.unique(np.quantile(finite, np.linspace(0, 1, n_bins + 1)))
                if q.size < 2:
                    q = np.array([finite.min(), finite.min() + 1.0])
                out.append(ColumnLayout(name, "numeric", edges=q, lo=float(finite.min()),
                                        hi=float(finite.max())))
            else:
                vals = pd.unique(col.dropna())
                try:
                    vals = sorted(vals)
                except TypeError:
                    vals = sorted(vals, key=str)
                out.append(ColumnLayout(name, "categorical", categories=tuple(vals)))
    return out


def code_matrix(frame: pd.DataFrame, layout: list[ColumnLayout]) -> np.ndarray:
    """Codes of every column, shape ``(n_rows, n_columns)``."""
    if not layout:
        return np.zeros((len(frame), 0), dtype=np.intp)
    return np.column_stack([c.codes(frame[c.name]) for c in layout])


def unit_matrix(frame: pd.DataFrame, layout: list[ColumnLayout]) -> np.ndarray:
    """Each column mapped so that it contributes at most 1 to a squared Euclidean distance.

    Numeric: the value scaled to [0, 1] by the layout's bounds, plus a missing-value indicator
    (a missing value sits at 0 with indicator 1).  Categorical: one-hot of the codes divided by
    :math:`\\sqrt 2` (two different categories are at squared distance 1).
    """
    blocks = []
    for c in layout:
        if c.kind == "numeric":
            z = c.unit(frame[c.name])
            miss = np.isnan(z)
            blocks.append(np.where(miss, 0.0, z)[:, None])
            blocks.append(miss[:, None].astype(np.float64))
        else:
            code = c.codes(frame[c.name])
            onehot = np.zeros((len(code), c.n_codes))
            onehot[np.arange(len(code)), code] = 1.0 / np.sqrt(2.0)
            blocks.append(onehot)
    return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))
