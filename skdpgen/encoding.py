r"""Reversible tabular encoding between a table and the model space, driven by a public schema.

The model space is a float vector made of contiguous :class:`Block` s, one group per column in
schema order:

* ``"continuous"`` / ``"integer"`` column with bounds :math:`[l, h]`: one value
  :math:`(\operatorname{clip}(x, l, h) - l) / (h - l) \in [0, 1]` (a ``"continuous"`` block, role
  ``"value"``); if the column is nullable, the value is 0.5 for a missing entry and a 2-wide
  ``"softmax"`` block (role ``"missing"``) follows: ``[observed, missing]``.
* ``"categorical"`` / ``"boolean"`` column with categories :math:`c_1, \dots, c_K`: one one-hot
  ``"softmax"`` block (role ``"categories"``) of width :math:`K`, plus a last "missing" slot if the
  column is nullable, plus a last "other" slot if its ``unknown`` is ``"other"``.

No statistic of the data is used: the bounds and categories come from the
:class:`~skdpgen.schema.Schema`, which is public (declared) or privately estimated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .schema import ColumnSpec, Schema, _numeric_values

if TYPE_CHECKING:
    import torch

__all__ = ["Block", "TabularEncoder", "OTHER", "cast_labels", "public_dtypes", "public_label_dtype"]

OTHER = "(other)"
"""How the "other" slot of a categorical column decodes in an object or string column."""


@dataclass(frozen=True)
class Block:
    """A contiguous slice ``[start, stop)`` of the model-space vector.

    Parameters
    ----------
    column : str
        The column the block encodes.
    kind : {"continuous", "softmax"}
        ``"continuous"``: one value in :math:`[0, 1]`; ``"softmax"``: a one-hot group (a generator
        should put a softmax over it).
    start, stop : int
        The slice.
    role : {"value", "missing", "categories"}
        A numeric value, the ``[observed, missing]`` indicator of a nullable numeric column, or
        the categories (with the missing/other slots, if any) of a discrete column.
    """

    column: str
    kind: str
    start: int
    stop: int
    role: str

    @property
    def width(self) -> int:
        """``stop - start``."""
        return self.stop - self.start

    @property
    def slice(self) -> slice:
        """``slice(start, stop)``."""
        return slice(self.start, self.stop)


class TabularEncoder(TransformerMixin, BaseEstimator):
    r"""Encode a table into a float matrix with public bounds and categories, and decode it back.

    Parameters
    ----------
    schema : Schema, dict or path
        The public schema (a :class:`~skdpgen.schema.Schema`, its plain-dict form or the path of a
        JSON file).  Required at :meth:`fit`.  Every non-target column of the schema must be in
        ``X``, and every column of ``X`` in the schema; the target may be in ``X`` (it is then
        encoded like any other column) or not.

    Attributes
    ----------
    schema_ : Schema
        The schema restricted to the columns of ``X``, in schema order.
    blocks_ : list of Block
        The layout of the model space.
    n_outputs_ : int
        Width of the model space.
    feature_names_in_ : ndarray of str
        Column names of ``X`` (only when fitted on a DataFrame).
    n_features_in_ : int
        Number of columns of ``X``.
    input_kind_ : {"pandas", "numpy"}
        What :meth:`inverse_transform` returns.
    dtypes_ : pandas.Series
        The dtypes of the input columns (public structure), restored by :meth:`inverse_transform`.
    columns_ : list of str
        Column names in input order (``"x0"``, ``"x1"``, ... for an array).

    Notes
    -----
    Layout (see :mod:`skdpgen.encoding`): for a numeric column with bounds :math:`[l, h]`,

    .. math:: z = \frac{\operatorname{clip}(x, l, h) - l}{h - l} \in [0, 1],

    so values **outside the bounds are clipped** to them (with DP-estimated bounds, the rows
    beyond the estimated quantiles).  A discrete column is one-hot over its categories, then a
    "missing" slot (nullable columns), then an "other" slot (``unknown="other"``).

    Missing values (``None``, ``NaN``, ``pd.NA``): in a nullable column they get the missing slot
    (and the value 0.5 for a numeric column); in a non-nullable column with ``missing="impute"``
    (set by :func:`~skdpgen.schema.estimate_schema`) they are encoded as the public
    :attr:`~skdpgen.schema.ColumnSpec.fill_value` (the midpoint of the bounds of a numeric column,
    a declared category of a discrete one); in a non-nullable categorical column with
    ``unknown="other"`` they go to the "other" slot; otherwise they raise ``ValueError`` (declare
    ``nullable=True``).  Infinite numbers raise ``ValueError``.

    Errors never show the data's values or how many rows are affected (both private): a value
    not among the categories is reported by its column and, where they differ from the
    categories' types, by its Python type (e.g. ``str`` categories but ``int`` values, as when a
    JSON schema declares ``["0", "1"]`` for a column of integers).

    Decoding (:meth:`inverse_transform`) accepts soft outputs: numeric values are clipped to
    :math:`[0, 1]` and mapped back (integers rounded), each softmax block is decoded by its argmax.
    The missing slot decodes to a missing value (``None`` in object columns of a discrete column,
    ``NaN`` or ``pd.NA`` otherwise) and the "other" slot to the string ``"(other)"`` in object and
    string columns and to a missing value in numeric-coded, boolean or ``category`` columns (whose
    dtype cannot hold it).
    Dtypes are restored: integers stay integers (``"Int64"`` when an integer column gets missing
    values), ``bool`` stays ``bool`` (``"boolean"`` with missing values), ``category`` keeps its
    categories, strings keep their string dtype, floats stay floats.  For a numpy input the
    result is an array of the input's dtype (``float64`` when an integer array gets missing values).
    A round trip ``inverse_transform(transform(X))`` gives back ``X`` for in-bounds data (up to
    float64 rounding for continuous columns; exactly for integer columns within the limits stated
    in :class:`~skdpgen.schema.ColumnSpec`: :math:`|l|, |h| \le 2^{53}` and :math:`h - l \le 2^{53}`,
    or :math:`2^{45}` on the log scale).

    Examples
    --------
    >>> import pandas as pd
    >>> enc = TabularEncoder(schema={"age": {"type": "integer", "bounds": [0, 100]},
    ...                              "sex": {"type": "categorical", "categories": ["F", "M"]}})
    >>> X = pd.DataFrame({"age": [20, 50], "sex": ["M", "F"]})
    >>> enc.fit_transform(X)
    array([[0.2, 0. , 1. ],
           [0.5, 1. , 0. ]])
    >>> enc.get_feature_names_out().tolist()
    ['age', 'sex=F', 'sex=M']
    """

    def __init__(self, schema: Schema | Mapping | str | os.PathLike | None = None):
        self.schema = schema

    # ------------------------------------------------------------------------------------------
    def fit(self, X, y=None) -> TabularEncoder:
        """Check the columns of ``X`` against the schema and lay out the model space.

        Reads only the structure of ``X`` (column names, number of columns, dtypes), no values.
        """
        if self.schema is None:
            raise ValueError("TabularEncoder needs a schema: declare the public bounds and categories "
                             "(skdpgen.Schema), or estimate them privately with "
                             "skdpgen.schema.estimate_schema")
        schema = Schema.coerce(self.schema)
        if isinstance(X, pd.DataFrame):
            bad = [c for c in X.columns if not isinstance(c, str)]
            if bad:
                raise ValueError(f"DataFrame column names must be strings, got {bad[:5]!r}")
            if X.columns.has_duplicates:
                raise ValueError("X has duplicate column names")
            columns = list(X.columns)
            self.input_kind_ = "pandas"
            self.feature_names_in_ = np.asarray(columns, dtype=object)
            self.dtypes_ = public_dtypes(X.dtypes, schema)
            self._column_index = X.columns.copy()
        else:
            arr = _as_2d_array(X)
            columns = [f"x{j}" for j in range(arr.shape[1])]
            self.input_kind_ = "numpy"
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            self.dtypes_ = pd.Series([arr.dtype] * len(columns), index=columns, dtype=object)
            self._column_index = pd.Index(columns, dtype=object)
        extra = [c for c in columns if c not in schema]
        missing = [c for c in schema.feature_names if c not in set(columns)]
        if extra or missing:
            parts = []
            if missing:
                parts.append(f"columns of the schema missing from X: {missing}")
            if extra:
                parts.append(f"columns of X not in the schema: {extra}")
            raise ValueError("X does not match the schema: " + "; ".join(parts))
        present = set(columns)
        self.schema_ = schema.subset([n for n in schema.names if n in present])
        for name, spec in self.schema_.columns.items():
            check_dtype(spec, self.dtypes_[name])
        self.columns_ = columns
        self.n_features_in_ = len(columns)
        self.blocks_ = _layout(self.schema_)
        self.n_outputs_ = self.blocks_[-1].stop if self.blocks_ else 0
        return self

    def transform(self, X) -> np.ndarray:
        """Encode ``X`` into the model space: float64 array of shape ``(n_samples, n_outputs_)``."""
        return self._transform(X)

    def to_tensor(self, X, device: Any = "cpu", dtype: torch.dtype | None = None) -> torch.Tensor:
        """:meth:`transform`, as a tensor on ``device`` (``float32`` unless ``dtype`` is given)."""
        import torch

        dtype = dtype or torch.float32
        # encoded straight into float32 when that is asked for: no float64 copy of a mostly one-hot matrix
        out = self._transform(X, np.float32 if dtype == torch.float32 else np.float64)
        return torch.as_tensor(out, dtype=dtype, device=device)

    def inverse_transform(self, Z) -> pd.DataFrame | np.ndarray:
        """Decode model-space rows (possibly soft: probabilities, values outside [0, 1]).

        Returns a DataFrame with the input's columns, order and dtypes, or an array when the
        encoder was fitted on an array.  See the class Notes for the rules.  ``Z`` may be an
        array, a DataFrame (``set_output(transform="pandas")``) or a torch tensor; a wrong width or
        NaN entries raise ``ValueError``.
        """
        check_is_fitted(self, "blocks_")
        if hasattr(Z, "detach"):  # torch tensor
            Z = Z.detach().cpu().numpy()
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.n_outputs_:
            raise ValueError(f"Z must have shape (n_samples, {self.n_outputs_}), got {Z.shape}")
        if np.isnan(Z).any():
            raise ValueError("Z contains NaN values")
        n = Z.shape[0]
        by_col = self._blocks_by_column()
        data: dict[str, Any] = {}
        for name, spec in self.schema_.columns.items():
            blocks = by_col[name]
            dtype = self.dtypes_[name]
            if spec.is_numeric:
                lo, hi = spec.bounds
                v = np.clip(from_unit(np.clip(Z[:, blocks[0].start], 0.0, 1.0), spec), lo, hi)
                if spec.kind == "integer":
                    v = np.round(v)
                miss = (np.argmax(Z[:, blocks[1].slice], axis=1) == 1) if spec.nullable \
                    else np.zeros(n, dtype=bool)
                data[name] = _restore_numeric(v, miss, dtype, spec)
            else:
                idx = np.argmax(Z[:, blocks[0].slice], axis=1)
                data[name] = _restore_discrete(idx, spec, dtype)
        # explicit dtypes: pandas would otherwise infer "str" for object arrays of strings
        frame = pd.DataFrame({name: pd.Series(data[name], dtype=data[name].dtype, copy=False)
                              for name in self.columns_})
        frame.columns = self._column_index
        if self.input_kind_ == "pandas":
            return frame
        return _frame_to_array(frame, self.dtypes_.iloc[0] if len(self.dtypes_) else np.dtype(float))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the model-space columns, e.g. ``"age"``, ``"age__missing"``, ``"sex=Female"``.

        A nullable numeric column ``c`` gives ``c``, ``c__observed``, ``c__missing``; a discrete
        column gives ``c=<category>`` for each category, then ``c__missing`` and ``c__other``.
        """
        check_is_fitted(self, "blocks_")
        if input_features is not None and [str(f) for f in input_features] != list(self.columns_):
            raise ValueError(f"input_features must be {list(self.columns_)}, got {list(input_features)}")
        names: list[str] = []
        for name, spec in self.schema_.columns.items():
            if spec.is_numeric:
                names.append(name)
                if spec.nullable:
                    names += [f"{name}__observed", f"{name}__missing"]
            else:
                names += [f"{name}={c}" for c in spec.categories]
                if spec.nullable:
                    names.append(f"{name}__missing")
                if spec.unknown == "other":
                    names.append(f"{name}__other")
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.target_tags.required = False
        return tags

    # ------------------------------------------------------------------------------------------
    def _blocks_by_column(self) -> dict[str, list[Block]]:
        out: dict[str, list[Block]] = {}
        for b in self.blocks_:
            out.setdefault(b.column, []).append(b)
        return out

    def _input_frame(self, X) -> pd.DataFrame:
        n_cols = self.n_features_in_
        if isinstance(X, pd.DataFrame):
            if self.input_kind_ == "pandas":
                cols = list(X.columns)
                missing = [c for c in self.columns_ if c not in set(cols)]
                extra = [c for c in cols if c not in set(self.columns_)]
                if missing or extra:
                    raise ValueError(f"X has the wrong columns: missing {missing}, unexpected {extra}")
                return X[self.columns_]
            if X.shape[1] != n_cols:
                raise ValueError(f"X has {X.shape[1]} columns, the encoder was fitted on {n_cols}")
            return X.set_axis(self.columns_, axis=1)
        arr = _as_2d_array(X)
        if arr.shape[1] != n_cols:
            raise ValueError(f"X has {arr.shape[1]} columns, the encoder was fitted on {n_cols}")
        return pd.DataFrame(arr, columns=self.columns_)

    def _transform(self, X, dtype=np.float64) -> np.ndarray:
        check_is_fitted(self, "blocks_")
        df = self._input_frame(X)
        n = len(df)
        if n == 0:
            raise ValueError("X has 0 rows; at least one row is needed")
        out = np.zeros((n, self.n_outputs_), dtype=dtype)  # numeric values are computed in float64
        by_col = self._blocks_by_column()
        rows = np.arange(n)
        for name, spec in self.schema_.columns.items():
            blocks = by_col[name]
            if spec.is_numeric:
                _encode_numeric(df[name], spec, blocks, out)
            else:
                codes = _encode_discrete(df[name], spec)
                out[rows, blocks[0].start + codes] = 1.0
        return out


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def public_dtypes(dtypes: pd.Series, schema: Schema) -> pd.Series:
    """The input's dtypes, with every category list taken from the PUBLIC ``schema``.

    A pandas ``CategoricalDtype`` carries its categories, and ``pd.Categorical(data)`` infers
    them from the private rows; a fitted estimator must not keep such a list (a rare category
    that the DP schema left out would sit in ``dtypes_`` and in the pickle).  Each one is
    replaced by the schema's categories (plus ``"(other)"`` where unknown values are merged),
    with the same ``ordered`` flag; other dtypes carry no data and are kept.
    """
    out = dtypes.copy()
    for name, dtype in dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            spec = schema[name] if name in schema else None
            cats = list(spec.categories) if spec is not None and spec.categories is not None else []
            if spec is not None and spec.unknown == "other" and OTHER not in cats:
                cats.append(OTHER)
            out[name] = pd.CategoricalDtype(cats, ordered=dtype.ordered)
    return out


def _as_2d_array(X) -> np.ndarray:
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {arr.shape}")
    return arr


def _layout(schema: Schema) -> list[Block]:
    blocks: list[Block] = []
    pos = 0
    for name, spec in schema.columns.items():
        if spec.is_numeric:
            blocks.append(Block(name, "continuous", pos, pos + 1, "value"))
            pos += 1
            if spec.nullable:
                blocks.append(Block(name, "softmax", pos, pos + 2, "missing"))
                pos += 2
        else:
            width = len(spec.categories) + int(spec.nullable) + int(spec.unknown == "other")
            blocks.append(Block(name, "softmax", pos, pos + width, "categories"))
            pos += width
    return blocks


def check_dtype(spec: ColumnSpec, dtype) -> None:
    """Raise ``ValueError`` when a numeric column's ``dtype`` cannot hold numbers (text, categorical)."""
    if not spec.is_numeric:
        return
    api = pd.api.types
    ok = api.is_numeric_dtype(dtype) or api.is_object_dtype(dtype)
    text = api.is_string_dtype(dtype) and not api.is_object_dtype(dtype)
    if isinstance(dtype, pd.CategoricalDtype) or text:
        ok = False
    if not ok:
        raise ValueError(f"column {spec.name!r} is declared {spec.kind} in the schema but has dtype {dtype}")


def to_unit(x: np.ndarray, spec: ColumnSpec) -> np.ndarray:
    r"""Clip to the bounds :math:`[l, h]` and map to :math:`[0, 1]` (linear or log scale, see ColumnSpec)."""
    lo, hi = spec.bounds
    with np.errstate(invalid="ignore"):
        c = np.clip(x, lo, hi) - lo
    if spec.resolved_scale == "log":
        return np.log1p(c) / np.log1p(hi - lo)
    return c / (hi - lo)


def from_unit(z: np.ndarray, spec: ColumnSpec) -> np.ndarray:
    """Inverse of :func:`to_unit` on :math:`[0, 1]`."""
    lo, hi = spec.bounds
    if spec.resolved_scale == "log":
        return lo + np.expm1(z * np.log1p(hi - lo))
    return lo + z * (hi - lo)


def _encode_numeric(col: pd.Series, spec: ColumnSpec, blocks: list[Block], out: np.ndarray) -> None:
    name = spec.name
    x = _numeric_values(col, name)
    miss = np.isnan(x)
    if np.isinf(x).any():
        raise ValueError(f"column {name!r} holds non-finite values (inf); only finite numbers or missing "
                         "values (NaN) can be encoded")
    if miss.any() and not spec.nullable:
        if spec.missing != "impute":  # no count in the message: it is private
            raise ValueError(_non_nullable_message(name))
        x = np.where(miss, spec.fill_value, x)  # a fixed public value, like the "other" slot of a category
    z = to_unit(x, spec)
    if spec.nullable:
        z[miss] = 0.5
    out[:, blocks[0].start] = z
    if spec.nullable:
        start = blocks[1].start
        out[:, start] = ~miss
        out[:, start + 1] = miss


def _encode_discrete(col: pd.Series, spec: ColumnSpec) -> np.ndarray:
    """Slot of each row within the column's softmax block."""
    name = spec.name
    cats = spec.categories
    k = len(cats)
    missing_slot = k if spec.nullable else None
    other_slot = k + int(spec.nullable) if spec.unknown == "other" else None
    miss = np.asarray(col.isna().to_numpy(), dtype=bool)
    values = col.to_numpy(dtype=object)
    codes = np.full(len(values), -1, dtype=np.int64)
    obs = ~miss
    codes[obs] = pd.Index(cats, dtype=object).get_indexer(values[obs])
    unknown = obs & (codes < 0)
    if unknown.any():
        if other_slot is None:  # neither the values nor how many: both are private
            raise ValueError(_unknown_values_message(name, values[unknown], cats))
        codes[unknown] = other_slot
    if miss.any():
        if missing_slot is not None:
            codes[miss] = missing_slot
        elif spec.missing == "impute":  # a fixed public category
            codes[miss] = pd.Index(cats, dtype=object).get_indexer([spec.fill_value])[0]
        elif other_slot is not None:
            codes[miss] = other_slot
        else:
            raise ValueError(_non_nullable_message(name))
    return codes


def _non_nullable_message(name: str) -> str:
    """The error for a missing value in a non-nullable column (no count: it is private)."""
    return (f"column {name!r} has missing values but the schema declares it non-nullable; declare "
            f"nullable=True in the schema (schema=...) to model them, or missing='impute' with a fill_value. "
            f"(A differentially private schema estimate never leaves a column so: it imputes or maps to "
            f"'other' the missing values it had too few of to model.)")


def _type_names(values) -> list[str]:
    """Sorted names of the Python types of ``values`` (numpy scalars as their Python equivalent)."""
    return sorted({type(v.item() if isinstance(v, np.generic) else v).__name__ for v in values})


def _unknown_values_message(name: str, unknown: np.ndarray, cats: tuple) -> str:
    """The error for values not among the categories: their types where they differ, never the values."""
    msg = (f"column {name!r} has values not among the schema's categories (not shown: they are private); "
           "add them to the categories or set unknown='other'")
    got, declared = _type_names(unknown), _type_names(cats)
    extra = [t for t in got if t not in declared]
    if extra:
        msg += (f". The schema's categories are {' and '.join(declared)} but the column also holds "
                f"{' and '.join(extra)} values: declare the categories with the column's type (e.g. 0 rather "
                f"than \"0\" in a JSON schema), or convert the column")
    return msg


def _restore_numeric(v: np.ndarray, miss: np.ndarray, dtype, spec: ColumnSpec):
    api = pd.api.types
    has_miss = bool(miss.any())
    if isinstance(dtype, np.dtype):
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            r = np.clip(np.round(v), info.min, info.max)
            if has_miss:
                arr = pd.array(r.astype(np.int64), dtype="Int64")
                arr[miss] = pd.NA
                return arr
            return r.astype(dtype)
        if dtype.kind == "f":
            r = v.astype(dtype)
            r[miss] = np.nan
            return r
        if dtype.kind == "b":
            r = np.round(v).astype(bool)
            if has_miss:
                arr = pd.array(r, dtype="boolean")
                arr[miss] = pd.NA
                return arr
            return r
        # object: Python numbers, NaN for missing
        vals = [int(x) if spec.kind == "integer" else float(x) for x in v]
        r = np.empty(len(vals), dtype=object)
        r[:] = vals
        r[miss] = np.nan
        return r
    # pandas extension dtype (Int64, Float64, ...)
    r = np.round(v) if api.is_integer_dtype(dtype) else v
    arr = pd.array(r.astype(np.int64) if api.is_integer_dtype(dtype) else r, dtype=dtype)
    arr[miss] = pd.NA
    return arr


def _restore_discrete(idx: np.ndarray, spec: ColumnSpec, dtype):
    api = pd.api.types
    cats = spec.categories
    k = len(cats)
    lookup = np.empty(k, dtype=object)
    lookup[:] = list(cats)
    is_cat = idx < k
    miss = (idx == k) if spec.nullable else np.zeros(idx.shape, dtype=bool)
    other = ~is_cat & ~miss
    values = np.empty(idx.shape, dtype=object)
    values[is_cat] = lookup[idx[is_cat]]
    values[~is_cat] = None
    has_gap = bool((~is_cat).any())

    if isinstance(dtype, pd.CategoricalDtype):
        # rebuilt from the PUBLIC schema: the input's category list may have been inferred from the
        # private rows (pd.Categorical(data) does that) and must not reach the output
        public = list(cats) + ([OTHER] if spec.unknown == "other" and OTHER not in cats else [])
        values[other] = OTHER if spec.unknown == "other" else None
        return pd.Categorical(values, dtype=pd.CategoricalDtype(public, ordered=dtype.ordered))
    if isinstance(dtype, np.dtype):
        if dtype.kind == "O":
            values[other] = OTHER
            return values
        if dtype.kind == "b":
            if has_gap:
                return pd.array(values, dtype="boolean")
            return values.astype(bool)
        if dtype.kind in "iu":
            if has_gap:
                return pd.array(values, dtype="Int64")
            return values.astype(dtype)
        if dtype.kind == "f":
            return np.array([np.nan if v is None else v for v in values], dtype=dtype)
        if dtype.kind in "US":
            values[other] = OTHER
            return values
        return values
    if api.is_string_dtype(dtype):
        values[other] = OTHER
        return pd.Series(values, dtype=object).astype(dtype).array
    # other extension dtypes (boolean, Int64, Float64, ...): missing and other -> NA
    return pd.array(values, dtype=dtype)


def _frame_to_array(frame: pd.DataFrame, dtype: np.dtype) -> np.ndarray:
    """The decoded frame of an array input as an array of the input's dtype."""
    if dtype.kind == "O":
        return frame.to_numpy(dtype=object)
    if dtype.kind in "US":
        arr = frame.to_numpy(dtype=object)
        return arr if frame.isna().to_numpy().any() else arr.astype(str)
    if frame.isna().to_numpy().any():
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)
    return frame.to_numpy(dtype=dtype)


def public_label_dtype(dtype, classes: np.ndarray):
    """The fitted labels' dtype with no data in it: a categorical one is rebuilt from the released classes.

    ``pd.Categorical(y)`` infers its categories from the private rows; only the released classes
    (declared or DP-estimated) may be kept (see :func:`~skdpgen.encoding.public_dtypes`).
    """
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.CategoricalDtype(list(classes.tolist()), ordered=dtype.ordered)
    return dtype


def cast_labels(classes: np.ndarray, y_idx: np.ndarray, dtype, name, as_series: bool):
    """The sampled labels ``classes[y_idx]`` as a Series (or ndarray) of the fitted labels' ``dtype``.

    The classes are cast once; where ``dtype`` cannot hold them exactly, the dtype is inferred instead.
    """
    values = None
    if dtype is not None:
        try:
            cast = pd.array(classes.tolist(), dtype=dtype)
        except (TypeError, ValueError):
            cast = None
        if cast is not None and cast.tolist() == classes.tolist():  # no lossy cast (1.5 -> 1, "x" -> True)
            values = cast.take(y_idx)
    if values is None:
        labels = restore_labels(classes[y_idx])
        return pd.Series(labels, name=name) if as_series else labels
    if as_series:
        return pd.Series(values, name=name, dtype=dtype)
    return values.to_numpy() if isinstance(dtype, np.dtype) else restore_labels(classes[y_idx])


def restore_labels(labels: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(labels.tolist())
    except (TypeError, ValueError):
        return labels
