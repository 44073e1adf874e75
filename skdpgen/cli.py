"""The ``skdpgen`` command line: synthesize a CSV with differential privacy, or run the demo.

Examples
--------
``skdpgen demo --out synthetic.csv``
    Fit on scikit-learn's breast cancer table (bundled, no download) at epsilon=1, print the
    privacy report and a train-synthetic-test-real summary, write the synthetic table.
``skdpgen synthesize data.csv --epsilon 1 --out fake.csv --schema schema.json --target income``
    Fit a CSV; without ``--schema`` the schema is estimated with DP (a share of the budget).

Errors print one line on stderr and exit with status 2; the arguments, the schema file and the
output folders are checked before the fit spends any budget.  The exact row count of the input
is private: it is neither printed nor used; by default as many rows are written as the model's
DP estimate of the row count (``n_samples_estimate_``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["main"]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epsilon", type=float, default=1.0, help="privacy budget (default 1.0)")
    p.add_argument("--delta", type=float, default=1e-5, help="privacy delta (default 1e-5)")
    p.add_argument("--features", default="hermite", choices=["hermite", "rff", "ntk"],
                   help="kernel feature map (default hermite)")
    p.add_argument("--n-iter", type=int, default=1000, help="generator training steps")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--report", type=Path, default=None, help="write the privacy report as JSON here")
    p.add_argument("--verbose", action="store_true")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skdpgen", description="Differentially private synthetic data.")
    sub = parser.add_subparsers(dest="command", required=True)
    syn = sub.add_parser("synthesize", help="fit a CSV file and write synthetic rows")
    syn.add_argument("data", type=Path, help="input CSV file (the private table)")
    syn.add_argument("--out", type=Path, required=True, help="output CSV file")
    syn.add_argument("--schema", type=Path, default=None,
                     help="public schema JSON; without it the schema is estimated with DP")
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


def _check_output(path: Path | None, option: str) -> None:
    """Fail before the fit (which spends the budget) when ``path`` cannot be written."""
    if path is None:
        return
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


def _dp_row_count(syn) -> int:
    """The model's released (DP) row count, rounded, at least 1: never the exact count."""
    return max(1, round(float(syn.n_samples_estimate_)))


def _cmd_synthesize(args) -> int:
    # everything that can be checked is checked before the fit spends the budget
    if args.n_samples is not None and args.n_samples < 1:
        raise _UsageError(f"--n-samples must be >= 1, got {args.n_samples}")
    if not args.data.exists():
        raise _UsageError(f"no such file: {args.data}")
    _check_output(args.out, "--out")
    _check_output(args.report, "--report")
    schema = _load_schema(args.schema) if args.schema is not None else None
    if schema is not None and args.target is not None and schema.target not in (None, args.target):
        raise _UsageError(f"--target {args.target!r} conflicts with the target {schema.target!r} of the schema "
                          f"{args.schema} ('__target__'); use --target {schema.target!r} or change the schema")
    df = pd.read_csv(args.data)
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
    X_fake.to_csv(args.out, index=False)
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
    _check_output(args.report, "--report")
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
    print(f"utility: HistGradientBoosting trained on synthetic rows, ROC-AUC on real held-out rows "
          f"{auc:.3f} (trained on the real rows: {real:.3f})")
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
