"""One call that evaluates a synthetic table against the real one: :func:`evaluate`."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from ..schema import Schema
from ._columns import as_frame, check_rows
from .fidelity import association_difference, detection_auc, marginal_tvd, mmd, pairwise_tvd
from .privacy import distance_to_closest_record
from .utility import _infer_task, tstr_evaluate

__all__ = ["evaluate"]

_COLUMNS = ["section", "metric", "column", "model", "value", "reference", "better"]
_SECTIONS = ("fidelity", "utility", "privacy")


def evaluate(real, synthetic, target: str | None = None, schema=None, *, test=None, holdout=None,
             sections=_SECTIONS, n_bins: int = 20, models: dict | None = None, task: str = "auto",
             max_rows: int | None = 10_000, random_state: int = 0, n_threads: int | None = 1) -> pd.DataFrame:
    r"""Fidelity, utility and privacy metrics of ``synthetic`` against ``real``, as one tidy table.

    Parameters
    ----------
    real : DataFrame
        The real rows the synthesizer was fitted on (target column included when ``target`` is
        given).
    synthetic : DataFrame
        Synthetic rows with the same columns.
    target : str, optional
        The target column: enables the utility section (train-synthetic-test-real with the model
        panel of :func:`~skdpgen.metrics.default_models`, and the real-data ceiling).
    schema : Schema or dict, optional
        Public bounds and categories for binning and scaling (without it they are read from the
        real rows).  A ``"__target__"`` entry (or ``Schema.target``) sets ``target`` when not given.
    test : DataFrame, optional
        Real rows NOT seen by the synthesizer.  TSTR is scored on them and the ceiling is trained on
        ``real``.  Without ``test``, ``real`` is split 70/30 (stratified for classification): the
        ceiling is trained on the 70 % and everything is scored on the 30 % (the synthesizer saw
        those rows too, which flatters the synthetic data slightly).
    holdout : DataFrame, optional
        Real rows not seen by the synthesizer for the distance-to-closest-record comparison
        (default ``test``); the privacy section is skipped when neither is given.
    sections : str or sequence of {"fidelity", "utility", "privacy"}
        The sections to run; a single name (``sections="fidelity"``) runs that one.
    n_bins : int, default=20
        Bins of numeric columns for the 1-way marginals (the 2-way marginals use half as many).
    max_rows : int or None, default=10000
        Row cap of the quadratic / model-based metrics (MMD uses at most 2000 rows).

    Returns
    -------
    pandas.DataFrame
        One metric value per row, columns ``section``, ``metric``, ``column`` (``""`` for a
        table-level metric), ``model`` (``""`` unless a model panel metric), ``value``,
        ``reference`` (the real-data ceiling for utility, the holdout value for DCR, 0.5 for
        ``detection_auc`` and ``share_closer_to_train``, else NaN) and ``better`` (``"lower"`` or
        ``"higher"``).  ``df.attrs["seconds"]`` holds the time spent.  ``detection_auc`` is the
        symmetrised AUC :math:`\max(A, 1 - A)` of :func:`~skdpgen.metrics.detection_auc` (0.5 is
        the best attainable; synthetic rows copied from ``real`` score high, with a warning).

    Raises
    ------
    ValueError
        If ``real``, ``synthetic``, ``test`` or ``holdout`` has no rows, the synthetic table lacks
        columns of the real one, or ``target`` / ``sections`` are unknown.

    Notes
    -----
    The metrics read the real rows; their values are NOT differentially private.  Publishing them
    for a private table discloses information beyond the synthetic data.
    """
    start = time.perf_counter()
    if isinstance(sections, str):
        sections = (sections,)
    sections = tuple(sections)
    bad = [s for s in sections if s not in _SECTIONS]
    if bad:
        raise ValueError(f"unknown sections {bad}; use some of {_SECTIONS}")
    check_rows(real=real, synthetic=synthetic, test=test, holdout=holdout)
    real = as_frame(real)
    synthetic = as_frame(synthetic, columns=real.columns if not isinstance(synthetic, pd.DataFrame) else None)
    sch = None if schema is None else Schema.coerce(schema)
    if target is None and sch is not None:
        target = sch.target
    if target is not None and target not in real.columns:
        raise ValueError(f"target {target!r} is not a column of the real table")
    missing = [c for c in real.columns if c not in synthetic.columns]
    if missing:
        raise ValueError(f"the synthetic table lacks columns {missing}")
    synthetic = synthetic[list(real.columns)]
    rows: list[tuple] = []

    if "fidelity" in sections:
        tv1 = marginal_tvd(real, synthetic, sch, n_bins=n_bins)
        for col, v in tv1.items():
            rows.append(("fidelity", "tvd_1way", col, "", v, np.nan, "lower"))
        rows.append(("fidelity", "tvd_1way_mean", "", "", float(tv1.mean()), np.nan, "lower"))
        tv2 = pairwise_tvd(real, synthetic, sch, n_bins=max(2, n_bins // 2))
        if len(tv2):
            rows.append(("fidelity", "tvd_2way_mean", "", "", float(tv2["tvd"].mean()), np.nan, "lower"))
            rows.append(("fidelity", "tvd_2way_max", "", "", float(tv2["tvd"].max()), np.nan, "lower"))
        diff = association_difference(real, synthetic, sch, n_bins=n_bins).to_numpy()
        if diff.shape[0] > 1:
            upper = diff[np.triu_indices_from(diff, k=1)]
            rows.append(("fidelity", "association_diff_mean", "", "", float(np.nanmean(upper)), np.nan, "lower"))
            rows.append(("fidelity", "association_diff_max", "", "", float(np.nanmax(upper)), np.nan, "lower"))
        rows.append(("fidelity", "mmd2", "", "", mmd(real, synthetic, sch, random_state=random_state),
                     np.nan, "lower"))
        rows.append(("fidelity", "detection_auc", "", "",
                     detection_auc(real, synthetic, sch, max_rows=max_rows, random_state=random_state,
                                   n_threads=n_threads), 0.5, "lower"))

    if "utility" in sections and target is not None:
        if task == "auto":
            task = _infer_task(real[target])
        if test is not None:
            train_part, test_part = real, as_frame(test)
        else:
            strat = real[target] if task == "classification" and real[target].nunique() > 1 else None
            train_part, test_part = train_test_split(real, test_size=0.3, random_state=random_state,
                                                     stratify=strat)
        if max_rows is not None:
            train_part = _cap(train_part, max_rows, random_state)
            syn = _cap(synthetic, max_rows, random_state)
        else:
            syn = synthetic
        table = tstr_evaluate(syn.drop(columns=target), syn[target], test_part.drop(columns=target),
                              test_part[target], X_train=train_part.drop(columns=target),
                              y_train=train_part[target], task=task, models=models,
                              random_state=random_state, n_threads=n_threads)
        for r in table.itertuples(index=False):
            rows.append(("utility", f"tstr_{r.metric}", "", r.model, r.synthetic, r.real, "higher"))

    hold = holdout if holdout is not None else test
    if "privacy" in sections and hold is not None:
        d = distance_to_closest_record(synthetic, real, as_frame(hold)[list(real.columns)], sch,
                                       max_rows=None if max_rows is None else min(max_rows, 5000),
                                       random_state=random_state)
        rows.append(("privacy", "dcr_median", "", "", d["dcr_train_median"], d["dcr_holdout_median"], "higher"))
        rows.append(("privacy", "dcr_p05", "", "", d["dcr_train_p05"], d["dcr_holdout_p05"], "higher"))
        rows.append(("privacy", "share_closer_to_train", "", "", d["share_closer_to_train"], 0.5, "lower"))
        rows.append(("privacy", "exact_copies_train", "", "", d["exact_copies_train"], np.nan, "lower"))

    out = pd.DataFrame(rows, columns=_COLUMNS)
    out.attrs["seconds"] = time.perf_counter() - start
    return out


def _cap(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return df if len(df) <= n else df.sample(n=n, random_state=seed)
