"""The ``skdpgen`` command line: synthesize a CSV with differential privacy, or run the demo.

Examples
--------
``skdpgen demo --out synthetic.csv``
    Fit on scikit-learn's breast cancer table (bundled, no download) at epsilon=1, print the
    privacy report and a train-synthetic-test-real summary, write the synthetic table.
``skdpgen synthesize data.csv --epsilon 1 --out fake.csv --schema schema.json --target income``
    Fit a CSV; without ``--schema`` the schema is estimated with DP (a share of the budget).

Errors print one line on stderr and exit with status 2; the arguments, the schema file, the output
paths and the separator of the CSV are checked before the fit spends any budget.  An output file
(``--out``, ``--report``) that exists is overwritten, but never when it is the input CSV or the
schema file (the same file under another name or through a link included).  The exact row count
of the input is private: it is neither printed nor used; by default as many rows are written as
the model's DP estimate of the row count (``n_samples_estimate_``).

The CSV is read with pandas' nullable dtypes (``dtype_backend="numpy_nullable"``), so that an
integer or boolean column with missing values stays integer (``Int64``) or boolean.  Without a
schema the column kinds come from the dtypes pandas infers from the file, which depend on the
values (a stray word makes a numeric column text): declare a schema for a guarantee that covers
the column kinds too.  With a schema, the declared kinds decide how columns are read: string
categories are read as text, continuous columns as floats, and integer columns are written as
integers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .schema import Schema

__all__ = ["main"]

_SEPARATORS = {",": "','", ";": "';'", "\t": "a tab", "|": "'|'"}
_SEP_HINT = {",": "--sep ','", ";": "--sep ';'", "\t": "--sep '\\t'", "|": "--sep '|'"}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epsilon", type=float, default=1.0, help="privacy budget (default 1.0)")
    p.add_argument("--delta", type=float, default=1e-5, help="privacy delta (default 1e-5)")
    p.add_argument("--features", default="hermite", choices=["hermite", "rff", "ntk"],
                   help="kernel feature map (default hermite)")
    p.add_argument("--n-iter", type=int, default=1000, help="generator training steps")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--report", type=Path, default=None,
                   help="write the privacy report as JSON here (overwritten if it exists)")
    p.add_argument("--verbose", action="store_true")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skdpgen", description="Differentially private synthetic data.")
    sub = parser.add_subparsers(dest="command", required=True)
    syn = sub.add_parser(
        "synthesize", help="fit a CSV file and write synthetic rows",
        description="Fit a CSV file with differential privacy and write synthetic rows. The CSV is read "
                    "with pandas' nullable dtypes (an integer column with missing values stays integer). "
                    "Without --schema the column kinds (integer, continuous, boolean, categorical) are "
                    "the dtypes pandas infers from the file, which depend on the private values; declare "
                    "a schema for a guarantee that covers the column kinds too.")
    syn.add_argument("data", type=Path, help="input CSV file (the private table); never overwritten")
    syn.add_argument("--out", type=Path, required=True,
                     help="output CSV file (overwritten if it exists; it may not be the input or the schema)")
    syn.add_argument("--schema", type=Path, default=None,
                     help="public schema JSON; without it the bounds and categories are estimated with DP "
                          "and the column kinds are those pandas infers from the file, which depend on the "
                          "values: declare a schema for a guarantee that covers the column kinds too")
    syn.add_argument("--sep", default=",",
                     help="field separator of the input CSV, also used for the output (default ','; "
                          "'\\t' for a tab)")
    syn.add_argument("--target", default=None, help="class column: fit class-conditionally")
    syn.add_argument("--n-samples", type=int, default=None,
                     help="rows to write (default: the DP estimate of the input's row count)")
    _add_common(syn)
    demo = sub.add_parser("demo", help="run on scikit-learn's bundled breast cancer table")
    demo.add_argument("--out", type=Path, default=Path("synthetic_breast_cancer.csv"))
    _add_common(demo)
    return parser


def _print_report(report: dict) -> None:
    print(f"privacy: ({report['epsilon']:.4g}, {report['delta']:.3g})-DP, neighbouring relation: "
          f"{report['neighbouring']}")
    for r in report["releases"]:
        noise = f", noise std {r['noise_std']:.4g}" if r.get("noise_std") is not None else ""
        sens = f", L2 sensitivity {r['sensitivity']:.4g}" if r.get("sensitivity") is not None else ""
        print(f"  release {r['name']}: {r['mechanism']}{sens}{noise}, epsilon {r['epsilon']:.4g}, "
              f"delta {r['delta']:.3g}")


def _synthesizer(args, schema):
    from . import DPMMDSynthesizer

    return DPMMDSynthesizer(epsilon=args.epsilon, delta=args.delta, schema=schema, features=args.features,
                            n_iter=args.n_iter, random_state=args.seed, device=args.device,
                            verbose=int(args.verbose))


def _write_report(path: Path | None, report: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(report, indent=2, default=str))


class _UsageError(Exception):
    """A problem with the command line, found before anything is fitted."""


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: equal resolved paths, or (both existing) ``samefile``.

    ``samefile`` also catches hard links and case-insensitive file systems.
    """
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):  # unreadable paths, link loops: the checks and the read report those
        return False


def _check_output(path: Path | None, option: str, inputs: dict[str, Path | None] | None = None) -> None:
    """Fail before the fit (which spends the budget) when ``path`` cannot or must not be written.

    Parameters
    ----------
    path : Path or None
        The output file; ``None`` (option not given) passes.
    option : str
        The option's name, for the message.
    inputs : dict of str to Path or None, optional
        Files that must not be overwritten (the private CSV, the schema, an earlier output), by
        the words that name them in the message.

    Raises
    ------
    _UsageError
        When ``path`` is a folder, its folder does not exist or is not writable, or it is the
        same file as one of ``inputs``.
    """
    if path is None:
        return
    for what, other in (inputs or {}).items():
        if other is not None and _same_file(path, other):
            raise _UsageError(f"{option} {path} is the same file as {what} {other}; writing it would "
                              f"overwrite it: choose another file name")
    folder = path.parent
    if path.is_dir():
        raise _UsageError(f"{option} {path} is a folder; give a file name")
    if not folder.is_dir():
        raise _UsageError(f"{option} {path}: no such folder: {folder}")
    if not os.access(folder, os.W_OK):
        raise _UsageError(f"{option} {path}: the folder {folder} is not writable")


def _load_schema(path: Path):
    from .schema import Schema

    try:
        return Schema.from_json(path)
    except json.JSONDecodeError as exc:
        raise _UsageError(f"--schema {path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise _UsageError(f"--schema {path}: cannot read it ({exc.strerror or exc})") from exc
    except (ValueError, TypeError) as exc:
        raise _UsageError(f"--schema {path}: {exc}") from exc


def _parse_sep(sep: str) -> str:
    """The ``--sep`` value as one character (``\\t``, ``tab`` -> a tab character)."""
    sep = {"\\t": "\t", "tab": "\t"}.get(sep, sep)
    if len(sep) != 1 or sep in "\"\r\n":
        raise _UsageError(f"--sep must be one character (or '\\t' for a tab), got {sep!r}")
    return sep


def _read_dtypes(schema: Schema | None) -> dict[str, str]:
    """Read-time dtypes for the columns whose declared categories are all strings.

    Read as text, ``0``/``1`` stay the strings ``"0"``/``"1"`` (and ``007`` stays ``"007"``)
    instead of being parsed as numbers that the declared categories would not contain.
    """
    if schema is None:
        return {}
    return {name: "string" for name, spec in schema.columns.items()
            if spec.kind == "categorical" and spec.categories
            and all(isinstance(c, str) for c in spec.categories)}


def _read_csv(path: Path, sep: str, schema: Schema | None) -> pd.DataFrame:
    """Read the private CSV; refuse one that was evidently split with the wrong separator.

    Nullable dtypes (``Int64``, ``boolean``, ``Float64``, ``string``) keep integer and boolean
    columns with missing values integer and boolean; with a ``schema``, the columns are read with
    dtypes matching their declared kinds (:func:`_read_dtypes`; continuous columns as floats).
    """
    df = pd.read_csv(path, sep=sep, dtype=_read_dtypes(schema), dtype_backend="numpy_nullable")
    if df.shape[1] == 1:
        header = str(df.columns[0])
        # misread when the header AND the first values hold another separator (a real one-column file
        # may have a header like "price;usd" over plain values; a declared column name is taken as is)
        values = df.iloc[:20, 0].dropna().astype(str).tolist()
        found = [c for c in _SEPARATORS if c != sep and c in header and (not values or any(c in v for v in values))
                 and (schema is None or header not in schema.columns)]
        if found:
            raise _UsageError(
                f"{path} was read as one column named {header[:60]!r} with the separator "
                f"{_SEPARATORS.get(sep, repr(sep))}, but its header contains {_SEPARATORS[found[0]]}: "
                f"give the separator with {_SEP_HINT[found[0]]}")
    if schema is not None:
        for name, spec in schema.columns.items():
            # an integer-looking continuous column must not come back rounded to integers
            if spec.kind == "continuous" and name in df.columns and pd.api.types.is_integer_dtype(df[name]):
                df[name] = df[name].astype("Float64")
    return df


def _integer_output(frame: pd.DataFrame, schema: Schema | None) -> pd.DataFrame:
    """Write the columns declared integer as integers, whatever float format the input had."""
    if schema is None:
        return frame
    for name, spec in schema.columns.items():
        if spec.kind == "integer" and name in frame.columns and pd.api.types.is_float_dtype(frame[name]):
            frame[name] = frame[name].astype("Int64")  # the values are rounded already
    return frame


def _dp_row_count(syn) -> int:
    """The model's released (DP) row count, rounded, at least 1: never the exact count."""
    return max(1, round(float(syn.n_samples_estimate_)))


def _cmd_synthesize(args) -> int:
    # everything that can be checked is checked before the fit spends the budget
    if args.n_samples is not None and args.n_samples < 1:
        raise _UsageError(f"--n-samples must be >= 1, got {args.n_samples}")
    if not args.data.exists():
        raise _UsageError(f"no such file: {args.data}")
    sep = _parse_sep(args.sep)
    inputs = {"the input CSV": args.data, "the schema file": args.schema}
    _check_output(args.out, "--out", inputs)
    _check_output(args.report, "--report", {**inputs, "--out": args.out})
    schema = _load_schema(args.schema) if args.schema is not None else None
    if schema is not None and args.target is not None and schema.target not in (None, args.target):
        raise _UsageError(f"--target {args.target!r} conflicts with the target {schema.target!r} of the schema "
                          f"{args.schema} ('__target__'); use --target {schema.target!r} or change the schema")
    df = _read_csv(args.data, sep, schema)
    y = None
    if args.target is not None:
        if args.target not in df.columns:
            raise _UsageError(f"--target {args.target!r} is not a column of {args.data}")
        y = df.pop(args.target)
    syn = _synthesizer(args, schema)
    start = time.perf_counter()
    syn.fit(df, y)
    # not len(df): the exact row count is private
    print(f"fitted {df.shape[1]} columns in {time.perf_counter() - start:.1f} s")
    n = args.n_samples if args.n_samples is not None else _dp_row_count(syn)
    if y is not None:
        X_fake, y_fake = syn.sample(n, random_state=args.seed, return_y=True)
        X_fake[args.target] = np.asarray(y_fake)
    else:
        X_fake = syn.sample(n, random_state=args.seed)
    X_fake = _integer_output(X_fake, schema)
    X_fake.to_csv(args.out, index=False, sep=sep)
    what = "" if args.n_samples is not None else " (the DP estimate of the input's row count)"
    print(f"wrote {n} synthetic rows to {args.out}{what}")
    _print_report(syn.privacy_report_)
    _write_report(args.report, syn.privacy_report_)
    return 0


def _cmd_demo(args) -> int:
    from sklearn.model_selection import train_test_split

    from .datasets import load_breast_cancer_table
    from .metrics import default_classifier, tstr_score

    _check_output(args.out, "--out")
    _check_output(args.report, "--report", {"--out": args.out})
    X, y, schema = load_breast_cancer_table()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    syn = _synthesizer(args, schema)
    start = time.perf_counter()
    syn.fit(X_tr, y_tr)
    # the rows are treated as private: the row count shown and used is the model's DP estimate
    n = _dp_row_count(syn)
    print(f"DPMMDSynthesizer(features={args.features!r}) fitted on the 70 % training split ({X.shape[1]} "
          f"columns) of scikit-learn's breast cancer table in {time.perf_counter() - start:.1f} s")
    _print_report(syn.privacy_report_)
    auc = tstr_score(syn, X_te, y_te, n_samples=n, random_state=args.seed)
    ceiling = default_classifier(X_tr).fit(X_tr, y_tr)
    real = float(__import__("sklearn.metrics", fromlist=["roc_auc_score"]).roc_auc_score(
        y_te == ceiling.classes_[1], ceiling.predict_proba(X_te)[:, 1]))
    print(f"utility: HistGradientBoosting trained on the synthetic rows, ROC-AUC on the real held-out rows "
          f"{auc:.3f}")
    # a model of the real rows is not private: shown only because the demo's table is public
    print(f"reference, NOT private (public demo data only): the same classifier trained on the real "
          f"training rows, ROC-AUC {real:.3f}")
    X_fake, y_fake = syn.sample(n, random_state=args.seed, return_y=True)
    X_fake["diagnosis"] = np.asarray(y_fake)
    X_fake.to_csv(args.out, index=False)
    print(f"wrote {n} synthetic rows to {args.out} (the DP estimate of the training split's row count)")
    _write_report(args.report, syn.privacy_report_)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "synthesize":
            return _cmd_synthesize(args)
        return _cmd_demo(args)
    except (_UsageError, ValueError, TypeError) as exc:
        return _fail(str(exc))
    except OSError as exc:  # reading the CSV, writing the output
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        return _fail(f"{exc.strerror or exc}{where}")


def _fail(message: str) -> int:
    """The documented convention: one line on stderr, exit status 2."""
    print(f"skdpgen: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
