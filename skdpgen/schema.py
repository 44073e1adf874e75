r"""Public metadata of a table: column kinds, bounds, categories and missing values.

A :class:`Schema` is what skdpgen is allowed to know about a table *without* spending privacy
budget: the user declares it (it is public knowledge, e.g. "age lies in [17, 90]"), or it is
estimated from the private rows with a declared slice of the budget (:func:`estimate_schema`), or,
only where the user explicitly accepts the leak, read straight from the data
(:meth:`Schema.infer`, which warns :class:`~skdpgen.exceptions.PrivacyLeakWarning`).

The plain dictionary format (round-trips through JSON)::

    {"age": {"type": "integer", "bounds": [17, 90]},
     "hours": {"type": "continuous", "bounds": [1, 99]},
     "sex": {"type": "categorical", "categories": ["Female", "Male"]},
     "workclass": {"type": "categorical", "categories": ["Private", "State-gov"], "nullable": true},
     "income": {"type": "categorical", "categories": ["<=50K", ">50K"]},
     "__target__": "income"}

Kinds of columns when no schema is given are read from the *dtype* only (public structure):
``bool`` -> ``"boolean"``, integer -> ``"integer"``, float -> ``"continuous"``, ``object`` /
``str`` / ``category`` -> ``"categorical"``.  A numpy array ``X`` gives columns named ``"x0"``,
``"x1"``, ..., all ``"continuous"`` when the array is numeric.  A target ``y`` is treated as class
labels (``"categorical"``; ``"boolean"`` for a bool vector) unless it has a float dtype
(``"continuous"``).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .exceptions import PrivacyLeakWarning
from .privacy import PrivacyRelease, gaussian_mechanism, sparse_histogram_threshold

__all__ = [
    "KINDS",
    "ColumnSpec",
    "Schema",
    "estimate_schema",
    "kind_from_dtype",
    "as_dataframe",
    "numeric_grid",
]

KINDS = ("continuous", "integer", "categorical", "boolean")
_NUMERIC = ("continuous", "integer")
_DISCRETE = ("categorical", "boolean")
_UNKNOWN = ("error", "other")
_TARGET_KEY = "__target__"
_DICT_KEYS = ("type", "bounds", "categories", "nullable", "unknown", "scale", "missing", "fill_value")
_SCALES = ("auto", "linear", "log")
_MISSING = ("error", "impute")
_EXACT_INT = 2.0 ** 53  # float64 holds every integer of magnitude <= 2**53 exactly, not all above


# --------------------------------------------------------------------------------------------------
# ColumnSpec
# --------------------------------------------------------------------------------------------------
def _py_scalar(v: Any) -> Any:
    """A numpy scalar as the equivalent Python scalar (``np.int64(3)`` -> ``3``); others unchanged."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def _is_missing_scalar(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _is_bool(v: Any) -> bool:
    """Whether ``v`` is a Python or numpy bool (``True == 1`` in Python, but not the same category here)."""
    return isinstance(v, bool | np.bool_)


def _midpoint(kind: str, lo: float, hi: float) -> float:
    """The midpoint of ``[lo, hi]``, rounded half up for an integer column."""
    mid = lo / 2.0 + hi / 2.0  # no overflow for bounds near the float64 limit
    return float(math.floor(mid + 0.5)) if kind == "integer" else mid


@dataclass(frozen=True)
class ColumnSpec:
    r"""Public description of one column.

    Parameters
    ----------
    name : str
        Column name.
    kind : {"continuous", "integer", "categorical", "boolean"}
        What the column holds.
    bounds : tuple of (float, float), optional
        Required for ``"continuous"`` and ``"integer"`` columns: ``lo < hi``, both finite, and
        the width :math:`h - l` finite in float64 (at most about :math:`1.8 \cdot 10^{308}`, so
        that the encoder can divide by it).  The encoder *clips* values outside the bounds.

        The encoder computes in float64, so an ``"integer"`` column round-trips exactly
        (:meth:`TabularEncoder.inverse_transform <skdpgen.encoding.TabularEncoder.inverse_transform>`
        of :meth:`~skdpgen.encoding.TabularEncoder.transform` gives back the same integers) only
        when :math:`|l|, |h| \le 2^{53}` and :math:`h - l \le 2^{53}` (linear scale) or
        :math:`h - l \le 2^{45} \approx 3.5 \cdot 10^{13}` (log scale); beyond that values come back
        within a relative error of about :math:`10^{-15}`.  Integer bounds beyond :math:`2^{53}`
        (about :math:`9.0 \cdot 10^{15}`, where float64 stops holding every integer) warn
        ``UserWarning``.
    categories : tuple, optional
        Required for ``"categorical"`` columns: unique, non-empty, no missing values (use
        ``nullable``).  ``"boolean"`` columns always have ``(False, True)``.
    nullable : bool, default=False
        Whether missing values (``None``, ``NaN``, ``pd.NA``) may occur.
    unknown : {"error", "other"}, default="error"
        What the encoder does with a value that is not among the categories: raise, or map it to
        an extra "other" slot (decoded as the string ``"(other)"``).  A missing value in a
        non-nullable column with ``unknown="other"`` also goes to the "other" slot.  Only for
        categorical and boolean columns.
    scale : {"auto", "linear", "log"}, default="auto"
        How a numeric column is mapped into :math:`[0, 1]`: ``"linear"``
        :math:`(x - l)/(h - l)`, or ``"log"`` :math:`\log(1 + x - l) / \log(1 + h - l)`, which
        resolves values near the lower bound (money amounts, counts with a spike at 0).
        ``"auto"`` picks ``"log"`` when :math:`l \ge 0` and :math:`h \ge 1000 \max(l, 1)` (the
        range spans three or more orders of magnitude) and ``"linear"`` otherwise: a rule on
        the public bounds only.
    missing : {"error", "impute"}, default="error"
        What the encoder does with a missing value in a *non-nullable* column: raise
        ``ValueError`` (or, for a discrete column with ``unknown="other"``, use the "other" slot),
        or replace it by the fixed public value :attr:`fill_value`, so that the row is modelled as
        if it held that value and synthetic rows have no missing value in the column.
        :func:`estimate_schema` sets ``"impute"`` on the numeric, boolean and declared-domain
        columns it estimates non-nullable; declare ``nullable=True`` to model missing values
        instead.  Only for non-nullable columns.
    fill_value : float, bool or category, optional
        The value imputed when ``missing="impute"`` (must be ``None`` otherwise).  For a numeric
        column a number within the bounds (an integer for an ``"integer"`` column); it defaults
        to the midpoint :math:`(l + h)/2` of the bounds, rounded half up for an integer column.
        For a categorical or boolean column one of the categories, required (no default).  It
        is fixed by the schema, never read from the data.

    Raises
    ------
    ValueError
        On an unknown kind, missing or invalid bounds (``lo >= hi``, not finite, ``hi - lo``
        overflowing), empty or duplicate categories, boolean categories other than
        ``(False, True)``, an invalid ``fill_value``; the message names the column.

    Notes
    -----
    Categories are compared as Python and pandas compare them: ``1``, ``1.0`` and ``True`` are
    equal (they hash equal), so they cannot be distinct categories of one column, and the encoder
    maps a value to the category it equals.
    """

    name: str
    kind: str
    bounds: tuple[float, float] | None = None
    categories: tuple | None = None
    nullable: bool = False
    unknown: str = "error"
    scale: str = "auto"
    missing: str = "error"
    fill_value: Any = None

    def __post_init__(self) -> None:
        name, kind = self.name, self.kind
        if self.scale not in _SCALES:
            raise ValueError(f"column {name!r}: scale must be one of {_SCALES}, got {self.scale!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"column names must be non-empty strings, got {name!r}")
        if name == _TARGET_KEY:
            raise ValueError(f"{_TARGET_KEY!r} is reserved and cannot name a column")
        where = f"column {name!r}"
        if kind not in KINDS:
            raise ValueError(f"{where}: unknown type {kind!r}; expected one of {KINDS}")
        if self.unknown not in _UNKNOWN:
            raise ValueError(f"{where}: unknown must be 'error' or 'other', got {self.unknown!r}")
        if not isinstance(self.nullable, bool | np.bool_):
            raise ValueError(f"{where}: nullable must be a bool, got {self.nullable!r}")
        object.__setattr__(self, "nullable", bool(self.nullable))
        if self.missing not in _MISSING:
            raise ValueError(f"{where}: missing must be 'error' or 'impute', got {self.missing!r}")
        if self.missing == "impute" and self.nullable:
            raise ValueError(f"{where}: missing='impute' applies only to non-nullable columns (a nullable "
                             "column models its missing values)")
        if self.missing != "impute" and self.fill_value is not None:
            raise ValueError(f"{where}: fill_value is the value imputed with missing='impute'; set "
                             "missing='impute' or drop fill_value")

        if kind in _NUMERIC:
            if self.categories is not None:
                raise ValueError(f"{where}: a {kind} column takes bounds, not categories")
            if self.unknown != "error":
                raise ValueError(f"{where}: unknown='other' applies only to categorical and boolean "
                                 "columns (numeric values outside the bounds are clipped)")
            lo, hi = _check_bounds(where, kind, self.bounds)
            object.__setattr__(self, "bounds", (lo, hi))
            if kind == "integer" and max(abs(lo), abs(hi), hi - lo) > _EXACT_INT:
                warnings.warn(f"{where}: integer bounds beyond 2**53 (about 9.0e15): the encoder computes in "
                              "float64, which does not hold every integer of that size, so such values do not "
                              "round-trip exactly (they come back rounded to a nearby float64 value)",
                              UserWarning, stacklevel=3)
            if self.missing == "impute":
                object.__setattr__(self, "fill_value", _check_numeric_fill(where, kind, lo, hi, self.fill_value))
            return

        if self.bounds is not None:
            raise ValueError(f"{where}: a {kind} column takes categories, not bounds")
        if kind == "boolean":
            if self.categories is not None:
                cats = [_py_scalar(c) for c in self.categories]
                if not (len(cats) == 2 and all(type(c) is bool for c in cats) and set(cats) == {False, True}):
                    raise ValueError(f"{where}: a boolean column has categories (False, True), "
                                     f"got {tuple(self.categories)!r}")
            object.__setattr__(self, "categories", (False, True))
            self._set_category_fill(where)
            return

        if self.categories is None:
            raise ValueError(f"{where}: a categorical column needs its categories")
        if isinstance(self.categories, str | bytes) or not isinstance(self.categories, Sequence | np.ndarray
                                                                       | pd.Index | set | frozenset):
            raise ValueError(f"{where}: categories must be a sequence of values, got {self.categories!r}")
        cats = tuple(_py_scalar(c) for c in self.categories)
        if not cats:
            raise ValueError(f"{where}: categories must not be empty")
        bad = [c for c in cats if _is_missing_scalar(c)]
        if bad:
            raise ValueError(f"{where}: categories must not contain missing values ({bad[0]!r}); "
                             "set nullable=True instead")
        try:
            seen: set = set()
            dup = [c for c in cats if c in seen or seen.add(c)]
        except TypeError as exc:
            raise ValueError(f"{where}: categories must be hashable scalars ({exc})") from None
        if dup:
            raise ValueError(f"{where}: duplicate categories {dup[:5]!r}")
        object.__setattr__(self, "categories", cats)
        self._set_category_fill(where)

    def _set_category_fill(self, where: str) -> None:
        """Validate the ``fill_value`` of a discrete column (one of the categories) and store it as such."""
        if self.missing != "impute":
            return
        fill = _py_scalar(self.fill_value)
        if fill is None or _is_missing_scalar(fill):
            raise ValueError(f"{where}: missing='impute' on a {self.kind} column needs a fill_value, one of its "
                             "categories")
        for c in self.categories:
            try:
                same = bool(c == fill) and _is_bool(c) == _is_bool(fill)
            except (TypeError, ValueError):
                same = False
            if same:
                object.__setattr__(self, "fill_value", c)
                return
        raise ValueError(f"{where}: fill_value {fill!r} is not one of the categories {self.categories!r}")

    @property
    def resolved_scale(self) -> str:
        """``"linear"`` or ``"log"``: the ``scale`` with ``"auto"`` resolved from the bounds."""
        if self.scale != "auto" or self.kind not in _NUMERIC:
            return "linear" if self.scale == "auto" else self.scale
        lo, hi = self.bounds
        return "log" if lo >= 0 and hi >= 1000.0 * max(lo, 1.0) else "linear"

    @property
    def is_numeric(self) -> bool:
        """Whether the column is ``"continuous"`` or ``"integer"``."""
        return self.kind in _NUMERIC

    def to_dict(self) -> dict:
        """The plain-dict form, e.g. ``{"type": "integer", "bounds": [17, 90]}`` (JSON-ready)."""
        d: dict[str, Any] = {"type": self.kind}
        if self.kind in _NUMERIC:
            lo, hi = self.bounds
            if self.kind == "integer":
                lo, hi = (int(v) if float(v).is_integer() else v for v in (lo, hi))
            d["bounds"] = [lo, hi]
        elif self.kind == "categorical":
            d["categories"] = list(self.categories)
        if self.nullable:
            d["nullable"] = True
        if self.unknown != "error":
            d["unknown"] = self.unknown
        if self.scale != "auto":
            d["scale"] = self.scale
        if self.missing != "error":
            d["missing"] = self.missing
            fill = self.fill_value
            if self.kind not in _NUMERIC:
                d["fill_value"] = fill
            elif fill != _midpoint(self.kind, *self.bounds):  # the default is implied
                d["fill_value"] = int(fill) if self.kind == "integer" and abs(fill) < _EXACT_INT else fill
        return d

    @classmethod
    def from_dict(cls, name: str, d: Mapping | ColumnSpec) -> ColumnSpec:
        """Build from the plain-dict form (keys ``type``, ``bounds``, ``categories``, ``nullable``,
        ``unknown``, ``scale``, ``missing``, ``fill_value``)."""
        if isinstance(d, ColumnSpec):
            if d.name != name:
                raise ValueError(f"column {name!r}: its ColumnSpec is named {d.name!r}")
            return d
        if not isinstance(d, Mapping):
            raise TypeError(f"column {name!r}: expected a dict like {{'type': 'continuous', 'bounds': "
                            f"[0, 1]}}, got {type(d).__name__}")
        extra = sorted(set(d) - set(_DICT_KEYS))
        if extra:
            raise ValueError(f"column {name!r}: unknown keys {extra}; expected some of {list(_DICT_KEYS)}")
        if "type" not in d:
            raise ValueError(f"column {name!r}: missing 'type' (one of {KINDS})")
        bounds = d.get("bounds")
        cats = d.get("categories")
        return cls(name=name, kind=d["type"], bounds=None if bounds is None else tuple(bounds),
                   categories=None if cats is None else tuple(cats), nullable=d.get("nullable", False),
                   unknown=d.get("unknown", "error"), scale=d.get("scale", "auto"),
                   missing=d.get("missing", "error"), fill_value=d.get("fill_value"))

    def describe(self) -> str:
        """A one-line summary, e.g. ``"integer [17, 90]"``."""
        if self.kind in _NUMERIC:
            text = f"{self.kind} [{self.bounds[0]:g}, {self.bounds[1]:g}]"
        elif self.kind == "boolean":
            text = "boolean"
        else:
            shown = ", ".join(repr(c) for c in self.categories[:4])
            more = ", ..." if len(self.categories) > 4 else ""
            text = f"categorical ({len(self.categories)}: {shown}{more})"
        if self.nullable:
            text += ", nullable"
        if self.unknown == "other":
            text += ", unknown->other"
        if self.missing == "impute":
            text += ", missing->imputed" + ("" if self.is_numeric else f" as {self.fill_value!r}")
        return text


def _check_bounds(where: str, kind: str, bounds: Any) -> tuple[float, float]:
    if bounds is None:
        raise ValueError(f"{where}: a {kind} column needs bounds=(lo, hi)")
    try:
        lo, hi = (float(_py_scalar(b)) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: bounds must be two numbers (lo, hi), got {bounds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{where}: bounds must be finite, got ({lo}, {hi})")
    if not lo < hi:
        raise ValueError(f"{where}: bounds need lo < hi, got ({lo:g}, {hi:g})")
    if not math.isfinite(hi - lo):
        raise ValueError(f"{where}: bounds ({lo:g}, {hi:g}) are too far apart: hi - lo overflows float64 (it "
                         "must stay below about 1.8e308); declare narrower bounds")
    return lo, hi


def _check_numeric_fill(where: str, kind: str, lo: float, hi: float, fill: Any) -> float:
    """The ``fill_value`` of a numeric column: the midpoint by default, else a number within the bounds."""
    if fill is None:
        return _midpoint(kind, lo, hi)
    fill = _py_scalar(fill)
    if _is_bool(fill) or not isinstance(fill, int | float):
        raise ValueError(f"{where}: fill_value must be a number within the bounds, got {fill!r}")
    fill = float(fill)
    if not (math.isfinite(fill) and lo <= fill <= hi):
        raise ValueError(f"{where}: fill_value {fill:g} must be a finite number within the bounds "
                         f"({lo:g}, {hi:g})")
    if kind == "integer" and not fill.is_integer():
        raise ValueError(f"{where}: fill_value of an integer column must be an integer, got {fill:g}")
    return fill


# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------
class Schema:
    """An ordered set of :class:`ColumnSpec`, optionally marking one column as the target.

    Parameters
    ----------
    columns : mapping of str to (ColumnSpec or dict), or sequence of ColumnSpec
        The columns in order.  A mapping may carry the key ``"__target__"``.
    target : str, optional
        Name of the target column (it must be one of ``columns``).

    Attributes
    ----------
    columns : dict of str to ColumnSpec
        The columns in order (a copy).
    target : str or None
        The target column.
    feature_names : list of str
        Names of the non-target columns.
    target_spec : ColumnSpec or None
        The target's spec.

    Examples
    --------
    >>> s = Schema({"age": {"type": "integer", "bounds": [17, 90]},
    ...             "sex": {"type": "categorical", "categories": ["Female", "Male"]}})
    >>> s["age"].bounds
    (17.0, 90.0)
    >>> Schema.from_dict(s.to_dict()) == s
    True
    """

    def __init__(self, columns: Mapping[str, ColumnSpec | Mapping] | Sequence[ColumnSpec],
                 target: str | None = None):
        cols: dict[str, ColumnSpec] = {}
        if isinstance(columns, Schema):
            cols = dict(columns._columns)
            target = columns.target if target is None else target
        elif isinstance(columns, Mapping):
            for name, spec in columns.items():
                if name == _TARGET_KEY:
                    if target is not None and spec != target:
                        raise ValueError(f"conflicting targets {spec!r} and {target!r}")
                    target = spec
                    continue
                cols[name] = ColumnSpec.from_dict(name, spec)
        elif isinstance(columns, Sequence) and not isinstance(columns, str | bytes):
            for spec in columns:
                if not isinstance(spec, ColumnSpec):
                    raise TypeError(f"a sequence of columns must hold ColumnSpec objects, got "
                                    f"{type(spec).__name__}")
                if spec.name in cols:
                    raise ValueError(f"duplicate column {spec.name!r}")
                cols[spec.name] = spec
        else:
            raise TypeError(f"columns must be a mapping or a sequence of ColumnSpec, got "
                            f"{type(columns).__name__}")
        if target is not None and target not in cols:
            raise ValueError(f"target {target!r} is not one of the columns {list(cols)}")
        self._columns = cols
        self.target = target

    # --- container protocol --------------------------------------------------------------------
    @property
    def columns(self) -> dict[str, ColumnSpec]:
        return dict(self._columns)

    @property
    def names(self) -> list[str]:
        """All column names in order (the target included)."""
        return list(self._columns)

    @property
    def feature_names(self) -> list[str]:
        return [n for n in self._columns if n != self.target]

    @property
    def target_spec(self) -> ColumnSpec | None:
        return None if self.target is None else self._columns[self.target]

    def __getitem__(self, name: str) -> ColumnSpec:
        try:
            return self._columns[name]
        except KeyError:
            raise KeyError(f"no column {name!r} in the schema (columns: {list(self._columns)})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schema):
            return NotImplemented
        return list(self._columns.items()) == list(other._columns.items()) and self.target == other.target

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        lines = [f"    {n!r}: {s.describe()}," for n, s in self._columns.items()]
        tgt = f", target={self.target!r}" if self.target is not None else ""
        return "Schema({\n" + "\n".join(lines) + "\n}" + tgt + ")"

    # --- conversions ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The plain-dict form (JSON-ready); the target, if any, under ``"__target__"``."""
        d: dict[str, Any] = {n: s.to_dict() for n, s in self._columns.items()}
        if self.target is not None:
            d[_TARGET_KEY] = self.target
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> Schema:
        """Build from the plain-dict form."""
        if not isinstance(d, Mapping):
            raise TypeError(f"expected a dict, got {type(d).__name__}")
        return cls(d)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Write the plain-dict form as JSON to ``path`` (if given); return the JSON text."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Schema:
        """Read a schema written by :meth:`to_json` (or by hand in the same format)."""
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))

    @classmethod
    def coerce(cls, obj: Schema | Mapping | str | os.PathLike) -> Schema:
        """A :class:`Schema` from a Schema, a plain dict, or the path of a JSON file."""
        if isinstance(obj, Schema):
            return obj
        if isinstance(obj, Mapping):
            return cls.from_dict(obj)
        if isinstance(obj, str | os.PathLike):
            return cls.from_json(obj)
        raise TypeError(f"schema must be a skdpgen Schema, a dict in the schema format or the path of a "
                        f"JSON file, got {type(obj).__name__}")

    def subset(self, names: Sequence[str]) -> Schema:
        """The schema of the columns ``names``, in the order given; keeps the target if included."""
        names = list(names)
        missing = [n for n in names if n not in self._columns]
        if missing:
            raise KeyError(f"columns not in the schema: {missing}")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate names in {names}")
        target = self.target if self.target in names else None
        return Schema([self._columns[n] for n in names], target=target)

    # --- from the data -------------------------------------------------------------------------
    @classmethod
    def infer(cls, X, y=None, *, target_name: str = "target") -> Schema:
        """Read kinds, bounds and categories straight from the data.  **Not private.**

        Bounds are the observed min and max (widened by 1 when they coincide), categories the
        observed values (sorted), ``nullable`` whether a value is missing.  This discloses exact
        extremes and every category, including one held by a single row: a privacy leak, so it
        always warns :class:`~skdpgen.exceptions.PrivacyLeakWarning`.  Use it for public data, or
        use :func:`estimate_schema` (differentially private) or declare the schema.
        """
        warnings.warn("Schema.infer reads bounds and categories straight from the data, which is a "
                      "privacy leak: they are not differentially private. Declare the schema, or "
                      "estimate it with skdpgen.schema.estimate_schema.", PrivacyLeakWarning, stacklevel=2)
        df, kinds = _frame_and_kinds(X, y, target_name)
        specs = []
        for name, kind in kinds.items():
            col = df[name]
            missing = col.isna().to_numpy()
            nullable = bool(missing.any())
            if kind in _NUMERIC:
                vals = _numeric_values(col, name)[~missing]
                if vals.size == 0:
                    raise ValueError(f"column {name!r} has no observed values to infer bounds from")
                if not np.isfinite(vals).all():
                    raise ValueError(f"column {name!r} holds non-finite values (inf)")
                lo, hi = float(vals.min()), float(vals.max())
                if kind == "integer":
                    lo, hi = math.floor(lo), math.ceil(hi)
                if not lo < hi:
                    hi = lo + 1
                specs.append(ColumnSpec(name, kind, bounds=(lo, hi), nullable=nullable))
            elif kind == "boolean":
                specs.append(ColumnSpec(name, kind, nullable=nullable))
            else:
                keys, _ = _value_counts(col[~missing])
                _check_no_bool_clash(name, keys)
                cats = _sorted_values(keys)
                if not cats:
                    raise ValueError(f"column {name!r} has no observed values to infer categories from")
                specs.append(ColumnSpec(name, kind, categories=tuple(cats), nullable=nullable))
        return cls(specs, target=target_name if y is not None else None)


# --------------------------------------------------------------------------------------------------
# kinds and frames
# --------------------------------------------------------------------------------------------------
def kind_from_dtype(dtype, name: str = "?") -> str:
    """The column kind implied by a pandas/numpy dtype (public structure only).

    ``bool``/``boolean`` -> ``"boolean"``; integer (``int64``, ``Int64``, ...) -> ``"integer"``;
    float -> ``"continuous"``; ``object``/``str``/``string``/``category`` -> ``"categorical"``.

    Raises
    ------
    TypeError
        For other dtypes (datetimes, complex, ...): declare such a column in a schema.
    """
    api = pd.api.types
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if api.is_bool_dtype(dtype):
        return "boolean"
    if api.is_integer_dtype(dtype):
        return "integer"
    if api.is_float_dtype(dtype):
        return "continuous"
    if api.is_object_dtype(dtype) or api.is_string_dtype(dtype):
        return "categorical"
    raise TypeError(f"column {name!r} has dtype {dtype}, which skdpgen cannot model; convert it or "
                    "declare the column in a schema")


def _target_kind(dtype, name: str) -> str:
    kind = kind_from_dtype(dtype, name)
    return "categorical" if kind == "integer" else kind


def as_dataframe(X, y=None, target_name: str = "target") -> pd.DataFrame:
    """``X`` (and ``y`` as the column ``target_name``) as a DataFrame.

    A DataFrame is used as it is (string column names required); a 2-D array gets columns
    ``"x0"``, ``"x1"``, ...; ``y`` must be 1-D (or a single column) with one entry per row.
    """
    if isinstance(X, pd.DataFrame):
        bad = [c for c in X.columns if not isinstance(c, str)]
        if bad:
            raise ValueError(f"DataFrame column names must be strings, got {bad[:5]!r}")
        if X.columns.has_duplicates:
            raise ValueError("DataFrame has duplicate column names")
        df = X
    else:
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {arr.shape}")
        df = pd.DataFrame(arr, columns=[f"x{j}" for j in range(arr.shape[1])])
    if y is not None:
        if target_name in df.columns:
            raise ValueError(f"X already has a column named {target_name!r}, the name given to y; pass another "
                             "target_name or rename the column")
        if isinstance(y, pd.DataFrame) and y.shape[1] == 1:
            y = y.iloc[:, 0]
        if isinstance(y, pd.Series):
            yv = y.array  # keeps extension dtypes (category, Int64, str)
        else:
            yv = np.asarray(y)
            if yv.ndim == 2 and yv.shape[1] == 1:
                yv = yv[:, 0]
        if yv.ndim != 1 or yv.shape[0] != len(df):
            raise ValueError(f"y must be 1-D with {len(df)} entries, got shape {np.shape(y)}")
        df = df.assign(**{target_name: yv})
    return df


def _frame_and_kinds(X, y, target_name: str) -> tuple[pd.DataFrame, dict[str, str]]:
    df = as_dataframe(X, y, target_name)
    kinds: dict[str, str] = {}
    numpy_numeric = not isinstance(X, pd.DataFrame) and np.asarray(X).dtype.kind in "iuf"
    for name in df.columns:
        if y is not None and name == target_name:
            kinds[name] = _target_kind(df[name].dtype, name)
        elif numpy_numeric:
            kinds[name] = "continuous"
        else:
            kinds[name] = kind_from_dtype(df[name].dtype, name)
    return df, kinds


def _numeric_values(col: pd.Series, name: str) -> np.ndarray:
    """A column as float64 with NaN for missing values; ValueError naming it if not numeric."""
    try:
        return np.asarray(col.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"column {name!r} is declared numeric but holds non-numeric values") from None


def _value_counts(observed: pd.Series) -> tuple[list, np.ndarray]:
    """Distinct values and their counts, keeping a bool apart from the number it equals.

    pandas counts ``True`` and ``1`` (or ``False`` and ``0``) of an object column as one value
    because they hash equal; here the bools of an object column are counted on their own.
    """
    parts = [observed]
    if observed.dtype == object and len(observed):
        is_bool = np.fromiter((_is_bool(v) for v in observed.to_numpy(dtype=object)), dtype=bool,
                              count=len(observed))
        if is_bool.any() and not is_bool.all():
            parts = [observed[is_bool], observed[~is_bool]]
    keys: list = []
    counts: list[np.ndarray] = []
    for part in parts:
        vc = part.astype(object).value_counts(sort=False)
        vc = vc[vc > 0]
        keys += [_py_scalar(k) for k in vc.index]
        counts.append(vc.to_numpy(dtype=np.float64))
    return keys, np.concatenate(counts) if counts else np.zeros(0)


def _check_no_bool_clash(name: str, keys: list) -> None:
    """Raise if ``keys`` hold a bool and a number equal to it (``True`` and ``1``): one category to Python."""
    bools = [k for k in keys if _is_bool(k)]
    if bools and any(not _is_bool(k) and any(_equal(k, b) for b in bools) for k in keys):
        raise ValueError(f"column {name!r} holds both bool values and numbers equal to them (True and 1, or False "
                         "and 0): Python and pandas treat such values as one category, so the schema and the "
                         "encoder cannot keep them apart; convert the column to one type (e.g. "
                         ".astype(str)) or map one of the two to another value")


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _sorted_values(values) -> list:
    vals = list(values)
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=lambda v: (type(v).__name__, str(v)))


# --------------------------------------------------------------------------------------------------
# DP estimation
# --------------------------------------------------------------------------------------------------
_GRID_DECADES = (-4, 300)
_DEFAULT_CUT_DELTA = 1e-6  # cut-off level (and stated GDP delta) when no column is thresholded
_GRID_STEPS_PER_DECADE = 8
_CORE_FALSE_ALARM = 1e-3  # chance that pure noise in some empty numeric bin makes a spurious run
_WARN_FALSE_ALARM = 1e-2  # chance that a table with no missing value gets the imputation warning


def numeric_grid() -> np.ndarray:
    r"""The fixed, data-independent bin edges used to estimate numeric bounds.

    Symmetric and log-spaced: :math:`0` and :math:`\pm 10^{k}` for
    :math:`k = -4, -4 + 1/8, \dots, 300` (4867 edges).  With the outer bins
    :math:`(-\infty, -10^{300})` and :math:`[10^{300}, \infty)` they make 4868 bins; each bin is
    :math:`[e_{i}, e_{i+1})`.  The relative resolution is :math:`10^{1/8} \approx 1.334`.

    The grid covers nearly all of float64 (whose largest number is about :math:`1.8 \cdot 10^{308}`)
    while keeping the width of any bounds read from it, at most :math:`2 \cdot 10^{300}`, finite.
    Values of magnitude below :math:`10^{-4}` share the two bins next to 0, so a column of tiny
    values gets bounds of about :math:`\pm 10^{-4}`.
    """
    k = np.arange(_GRID_DECADES[0] * _GRID_STEPS_PER_DECADE, _GRID_DECADES[1] * _GRID_STEPS_PER_DECADE + 1)
    pos = 10.0 ** (k / _GRID_STEPS_PER_DECADE)
    return np.concatenate([-pos[::-1], [0.0], pos])


def estimate_schema(
    X,
    y=None,
    *,
    mu: float,
    threshold_delta: float,
    rng: np.random.Generator,
    candidates: Mapping[str, Sequence] | None = None,
    quantiles: tuple[float, float] = (0.001, 0.999),
    target_name: str = "target",
    owner: str = "",
) -> tuple[Schema, list[PrivacyRelease]]:
    r"""Estimate a schema with differential privacy: one Gaussian release of all column histograms.

    Neighbouring relation: add/remove one row.  Every row adds 1 to exactly one bin of the
    histogram of each of the :math:`d` columns (the target counts as a column), so the joint
    histogram has L2 sensitivity :math:`\sqrt{d}`.  All counts get independent noise
    :math:`N(0, s^2)` with :math:`s = \sqrt{d}/\mu` in a single release, which is :math:`\mu`-GDP;
    releasing only the keys of categorical values *present* in the data (a sparse histogram) adds
    ``threshold_delta``.

    Numeric columns (``"continuous"``, ``"integer"``)
        Counted over the fixed public grid :func:`numeric_grid` (:math:`B = 4868` bins, magnitudes
        :math:`10^{-4}` to :math:`10^{300}`) plus one "missing" bin.  A post-processing step keeps
        only the runs of consecutive bins whose noisy counts exceed :math:`2s` and which contain
        a bin above the core cut-off

        .. math:: \tau_{\mathrm{num}} = \max\bigl(\tau,\; 1 + s\,\Phi^{-1}(1 - \alpha / (B\, m))\bigr),
                  \qquad \alpha = 10^{-3},

        (:math:`m` the number of numeric columns, :math:`\tau` below); the other counts are set
        to 0.  The noise is the same whatever :math:`B` (the sensitivity counts columns, not
        bins), but every empty bin is a chance for pure noise to pass a cut-off, so
        :math:`\tau_{\mathrm{num}}` grows with :math:`\sqrt{\log(B m)}`: pure noise in the
        thousands of empty bins passes it with probability at most :math:`\alpha` per release
        (clipping it at 0 instead would add about :math:`0.4\,s` per empty bin), while low-count
        tail bins next to the bulk of the data are kept.  Tail mass in bins below the cut-offs
        is lost, so with strong noise the bounds can fall inside the quantiles.  With
        :math:`\tilde F` the CDF of the remaining counts, ``lo`` is the left edge of the bin where
        :math:`\tilde F` first exceeds ``quantiles[0]`` and ``hi`` the right edge of the bin where it
        reaches ``quantiles[1]`` (outer edges, so the interval covers that mass).  The infinite
        outer bins are clamped to :math:`\pm 10^{300}`: when the bounds come from one of them
        (values beyond :math:`\pm 10^{300}`, read from the noisy counts), a ``UserWarning`` names
        the column.  Integer columns are rounded outward.  The bounds are thus within about one
        grid step (a factor :math:`10^{1/8}`) of the quantiles, up to noise; the encoder *clips*
        values outside them.
    Categorical and boolean columns, and the target (class labels)
        If ``candidates`` declares a public domain for the column (booleans always have
        ``(False, True)``), noisy counts over that domain and the missing bin are released and all
        candidate categories kept (``unknown="error"``; a column with candidates is categorical
        whatever its dtype).  Otherwise the column is *thresholded*: noise is added to the counts
        of the values present, and a value is kept when its noisy count exceeds

        .. math:: \tau = 1 + s\, \Phi^{-1}(1 - \delta_\tau / k)

        (:func:`~skdpgen.privacy.sparse_histogram_threshold`, :math:`k` the number of thresholded
        columns, :math:`\delta_\tau` = ``threshold_delta``): a value held by the added/removed row
        alone is released with probability at most :math:`\delta_\tau / k`.  The kept values are
        sorted; the column gets ``unknown="other"``, so values not released go to an "other" slot
        at encode time.  In an ``object`` column a bool is counted apart from the number it
        equals (``True`` and ``1``); if both are kept, the column cannot be represented (they are
        one category to Python and pandas) and ``ValueError`` says so.
    Missing values
        A column is ``nullable`` when its noisy missing count exceeds :math:`\tau`.  A missing value
        in a column estimated non-nullable is treated like an unknown value, so that the fit never
        depends on whether a few rows have one: it goes to the "other" slot of a thresholded
        categorical column, and the other columns get ``missing="impute"`` (see
        :class:`ColumnSpec`): a missing value is encoded as a fixed public value,
        :attr:`ColumnSpec.fill_value`, and synthetic rows have none.  For a numeric column that is
        the midpoint of the estimated bounds (rounded for an integer column); for a boolean
        column (e.g. a pandas ``"boolean"`` column) or one with ``candidates``, the category with
        the largest *noisy* count.  One ``UserWarning`` names the columns where the noisy missing
        count suggests missing values,

        .. math:: \tilde c_{\mathrm{missing}} > s\,\Phi^{-1}(1 - \alpha_w / m_w),
                  \qquad \alpha_w = 10^{-2},

        (:math:`m_w` the number of such columns): a table with no missing value gets it with
        probability at most :math:`\alpha_w`.  It does not say how many values are missing; to
        model them, declare the columns with ``nullable=True`` in a schema.  All of this reads
        only the noisy counts: it is post-processing and costs no privacy.

    Parameters
    ----------
    X : DataFrame or ndarray of shape (n_samples, n_features)
        The private rows.  Kinds come from the dtypes (see :func:`kind_from_dtype`); a numeric
        ndarray gives continuous columns ``"x0"``, ``"x1"``, ...
    y : array-like of shape (n_samples,), optional
        Target, added as the column ``target_name`` and marked as the schema's target.
    mu : float
        GDP parameter of the release (``inf``: no noise and no thresholding, no privacy).
    threshold_delta : float
        :math:`\delta_\tau` in [0, 1).  May be 0 only when no column is thresholded (all numeric,
        boolean or with ``candidates``); then the post-processing cut-off :math:`\tau` uses
        :math:`10^{-6}` in its place, and the release's epsilon is stated at a GDP delta of
        :math:`10^{-6}`.
    rng : numpy.random.Generator
        The only source of noise (global generators are not touched).
    candidates : mapping of str to sequence, optional
        Public category domains of some columns.
    quantiles : (float, float), default=(0.001, 0.999)
        Mass to cover with the numeric bounds.
    target_name : str, default="target"
        Name of the target column.
    owner : str
        Recorded in the release (which estimator made it).

    Returns
    -------
    schema : Schema
    releases : list of PrivacyRelease
        One :meth:`PrivacyRelease.gaussian <skdpgen.privacy.PrivacyRelease.gaussian>` named
        ``"schema"`` with ``mu``, ``sensitivity`` :math:`\sqrt{d}`, ``noise_std`` :math:`s`,
        ``extra_delta`` :math:`\delta_\tau` (mechanism ``"gaussian_sparse_histogram"``) or 0 when no
        column is thresholded (mechanism ``"gaussian"``); its epsilon is stated at a GDP delta of
        :math:`\delta_\tau` (total delta :math:`2\delta_\tau`, resp. :math:`\delta_\tau`).  The ledger
        composes it exactly through ``mu``.

    Warns
    -----
    UserWarning
        When the noisy missing count of a column estimated non-nullable suggests missing values
        (they are imputed, see above), and when a numeric column's bounds come from an outer grid
        bin (values beyond :math:`\pm 10^{300}`); both read only the noisy counts.

    Raises
    ------
    ValueError
        If a column keeps no category or no numeric bin survives the noise (declare the column in
        the schema, or give the estimate more budget: a larger epsilon or ``schema_share``), if an
        ``object`` column keeps both a bool and a number equal to it, or on invalid arguments.
    """
    mu = float(mu)
    if not mu > 0 or math.isnan(mu):
        raise ValueError(f"mu must be > 0, got {mu}")
    threshold_delta = float(threshold_delta)
    if not 0.0 <= threshold_delta < 1.0:
        raise ValueError(f"threshold_delta must be in [0, 1), got {threshold_delta}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    q0, q1 = (float(q) for q in quantiles)
    if not 0.0 <= q0 < q1 <= 1.0:
        raise ValueError(f"quantiles must satisfy 0 <= q0 < q1 <= 1, got {quantiles}")

    df, kinds = _frame_and_kinds(X, y, target_name)
    if len(df) == 0:
        raise ValueError("X has 0 rows: nothing to estimate a schema from")
    candidates = dict(candidates or {})
    unknown_cand = [c for c in candidates if c not in kinds]
    if unknown_cand:
        raise ValueError(f"candidates given for columns not in the data: {unknown_cand}")
    for name in candidates:
        if kinds[name] != "boolean":
            kinds[name] = "categorical"

    grid = numeric_grid()
    n_value_bins = grid.size + 1
    # Build every column's exact counts, then release them all in ONE Gaussian draw.
    parts: list[tuple[str, str, list, np.ndarray]] = []  # (name, mode, keys, counts incl. missing last)
    for name, kind in kinds.items():
        col = df[name]
        missing = col.isna().to_numpy()
        n_missing = float(missing.sum())
        if kind in _NUMERIC:
            vals = _numeric_values(col, name)[~missing]
            bins = np.searchsorted(grid, vals, side="right")
            counts = np.bincount(bins, minlength=n_value_bins).astype(np.float64)
            parts.append((name, "numeric", [], np.append(counts, n_missing)))
            continue
        domain = (False, True) if kind == "boolean" else candidates.get(name)
        observed = col[~missing]
        if domain is not None:
            domain = ColumnSpec(name, kind, categories=tuple(domain)).categories  # validates
            idx = pd.Index(domain, dtype=object).get_indexer(observed.to_numpy(dtype=object))
            counts = np.bincount(idx[idx >= 0], minlength=len(domain)).astype(np.float64)
            parts.append((name, "domain", list(domain), np.append(counts, n_missing)))
        else:
            keys, counts = _value_counts(observed)  # a bool apart from the number it equals
            parts.append((name, "sparse", keys, np.append(counts, n_missing)))

    d = len(parts)
    if d == 0:
        raise ValueError("X has no columns (and no y): nothing to estimate a schema from")
    n_sparse = sum(p[1] == "sparse" for p in parts)
    if n_sparse and threshold_delta == 0.0 and not math.isinf(mu):
        sparse = [p[0] for p in parts if p[1] == "sparse"]
        raise ValueError(f"threshold_delta must be > 0: the columns {sparse} are estimated with a "
                         "thresholded histogram (or declare their categories)")
    sensitivity = math.sqrt(d)
    n_numeric = sum(p[1] == "numeric" for p in parts)
    n_imputable = n_numeric + sum(p[1] == "domain" for p in parts)
    if math.isinf(mu):
        noise_std, tau, tau_core, warn_cut = 0.0, 0.0, 0.0, 0.0
    else:
        noise_std = sensitivity / mu
        # with no thresholded column tau is a pure post-processing cut-off; any fixed level is free
        tau_delta = threshold_delta if n_sparse else (threshold_delta or _DEFAULT_CUT_DELTA)
        tau = sparse_histogram_threshold(noise_std, tau_delta, max_new_keys=max(n_sparse, 1))
        # post-processing cut-offs with a fixed false-alarm rate over all the bins / columns they scan
        tau_core = max(tau, sparse_histogram_threshold(noise_std, _CORE_FALSE_ALARM,
                                                       max_new_keys=n_value_bins * max(n_numeric, 1)))
        warn_cut = -noise_std * float(special.ndtri(_WARN_FALSE_ALARM / max(n_imputable, 1)))
    exact = np.concatenate([p[3] for p in parts])
    noisy = gaussian_mechanism(exact, noise_std, rng)
    # ---- everything below is post-processing of `noisy` ----
    specs: list[ColumnSpec] = []
    imputed: list[str] = []  # columns that may have missing values the estimate left non-nullable
    beyond: list[str] = []  # numeric columns whose bounds come from an outer (infinite) grid bin
    offset = 0
    for (name, mode, keys, counts), kind in zip(parts, kinds.values(), strict=True):
        c = noisy[offset:offset + counts.size]
        offset += counts.size
        nullable = bool(c[-1] > tau)
        missing_noisy = float(c[-1])
        c = c[:-1]
        # the warning is post-processing of the NOISY missing count (the exact one is private)
        if mode != "sparse" and not nullable and missing_noisy > warn_cut:
            imputed.append(name)
        if mode == "numeric":
            lo, hi, outer = _bounds_from_noisy_counts(name, c, grid, tau_core, 2.0 * noise_std, q0, q1,
                                                      integer=kind == "integer")
            if outer:
                beyond.append(name)
            specs.append(ColumnSpec(name, kind, bounds=(lo, hi), nullable=nullable,
                                    missing="error" if nullable else "impute"))
        elif mode == "domain":
            # a missing value gets the category with the largest NOISY count (post-processing)
            fill = None if nullable else keys[int(np.argmax(c))]
            specs.append(ColumnSpec(name, kind, categories=tuple(keys), nullable=nullable,
                                    missing="error" if nullable else "impute", fill_value=fill))
        else:
            kept = _sorted_values(k for k, v in zip(keys, c, strict=True) if v > tau)
            if not kept:
                raise ValueError(f"column {name!r}: no category survived the privacy threshold; declare the "
                                 "column (its categories) in schema=..., or give the schema estimate more "
                                 "budget (a larger epsilon, or a larger schema_share of it)")
            _check_no_bool_clash(name, kept)  # decided on the noisy counts: post-processing
            specs.append(ColumnSpec(name, kind, categories=tuple(kept), nullable=nullable, unknown="other"))

    schema = Schema(specs, target=target_name if y is not None else None)
    if imputed:  # from the noisy counts only: whether a value is missing is private
        warnings.warn(f"the column(s) {imputed} may have missing values, too few for the differentially private "
                      "schema estimate to make them nullable; they are imputed with a fixed public value "
                      "(missing='impute': the midpoint of a numeric column's bounds, the category with the "
                      "largest noisy count of a boolean or declared-domain column), and synthetic rows have none "
                      "there. To model missing values, declare the column(s) with nullable=True in schema=...",
                      UserWarning, stacklevel=2)
    if beyond:  # from the noisy counts only
        warnings.warn(f"the numeric column(s) {beyond} may hold values beyond +-1e300, the range of the "
                      "differentially private schema estimate: their bounds stop at +-1e300 and larger values "
                      "are clipped. Declare the bounds in schema=...", UserWarning, stacklevel=2)
    if n_sparse and not math.isinf(mu):
        release = PrivacyRelease.gaussian("schema", mu=mu, delta=2 * threshold_delta,
                                          extra_delta=threshold_delta, sensitivity=sensitivity,
                                          noise_std=noise_std, mechanism="gaussian_sparse_histogram",
                                          owner=owner)
    else:
        release = PrivacyRelease.gaussian("schema", mu=mu, delta=threshold_delta or _DEFAULT_CUT_DELTA,
                                          extra_delta=0.0,
                                          sensitivity=sensitivity, noise_std=noise_std,
                                          mechanism="gaussian", owner=owner)
    return schema, [release]


def _bounds_from_noisy_counts(name: str, counts: np.ndarray, grid: np.ndarray, tau: float, low_cut: float,
                              q0: float, q1: float, integer: bool) -> tuple[float, float, bool]:
    """Bounds covering the [q0, q1] mass of the noisy grid histogram (post-processing).

    Returns ``(lo, hi, outer)``, ``outer`` telling whether a bound comes from an infinite outer bin
    (clamped to the grid, so values beyond it are clipped).
    """
    # Keep the runs of consecutive bins above the low cut-off that hold a bin above tau: pure noise
    # in empty bins rarely reaches tau, and low-count tail bins next to the bulk are kept.
    low = min(tau, low_cut)
    keep = counts > low
    run_id = np.cumsum(np.concatenate([[1], np.diff(keep.astype(np.int64)) != 0]))
    core_runs = np.unique(run_id[counts > tau])
    keep &= np.isin(run_id, core_runs)
    c = np.where(keep, counts, 0.0)
    total = c.sum()
    if not total > 0:
        raise ValueError(f"column {name!r}: its histogram did not survive the privacy noise; declare its "
                         "bounds in schema=..., or give the schema estimate more budget (a larger epsilon, or a "
                         "larger schema_share of it)")
    cdf = np.cumsum(c) / total
    i = int(np.searchsorted(cdf, q0, side="right"))  # first bin where the CDF exceeds q0
    j = int(np.searchsorted(cdf, q1, side="left"))   # first bin where the CDF reaches q1
    last = c.size - 1
    i, j = min(i, last), min(max(j, i), last)
    outer = bool((i == 0 and c[0] > 0) or (j == last and c[last] > 0))
    ext = np.concatenate([[grid[0]], grid, [grid[-1]]])  # infinite outer edges clamped to the grid
    lo, hi = float(ext[i]), float(ext[j + 1])
    if not lo < hi:  # both in the same clamped outer bin
        if lo >= grid[-1]:
            lo = float(grid[-2])
        else:
            hi = float(grid[1])
    if integer:
        lo, hi = float(math.floor(lo)), float(math.ceil(hi))
        if not lo < hi:
            hi = lo + 1.0
    return lo, hi, outer
