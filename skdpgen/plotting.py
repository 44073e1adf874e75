"""Plots for synthetic-data evaluation (matplotlib, an optional dependency: ``pip install skdpgen[plot]``).

* :func:`plot_marginals`: real vs synthetic histogram of each column (same bins as the metrics);
* :func:`plot_association_difference`: heat map of ``|assoc(real) - assoc(synthetic)|``;
* :func:`plot_privacy_utility`: score against epsilon from a ``GridSearchCV`` over ``epsilon``.

Every function returns the matplotlib ``Figure`` (and draws into ``ax`` when one is given).  The
plots show statistics of the REAL rows: they are not differentially private.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .metrics._columns import as_frame, code_matrix, layout_columns
from .metrics.fidelity import association_difference

__all__ = ["plot_association_difference", "plot_marginals", "plot_privacy_utility"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("skdpgen.plotting needs matplotlib: pip install 'skdpgen[plot]' "
                          "(or pip install matplotlib)") from exc
    return plt


def plot_marginals(real, synthetic, schema=None, *, columns=None, n_bins: int = 20, ncols: int = 4,
                   max_categories: int = 12, figsize_per_panel=(3.2, 2.4)):
    """Real vs synthetic 1-way marginals, one panel per column.

    Numeric columns are binned as in :func:`skdpgen.metrics.marginal_tvd` (public bounds with a
    schema; real quantiles without); categorical columns show their ``max_categories`` most
    frequent real categories (the rest, unknown values and missing values are not drawn).  Each
    panel's title carries the column's total-variation distance.
    """
    plt = _pyplot()
    real = as_frame(real)
    synthetic = as_frame(synthetic, columns=real.columns if not isinstance(synthetic, pd.DataFrame) else None)
    layout = layout_columns(real, synthetic, schema, n_bins, columns)
    if not layout:
        raise ValueError("no columns to plot")
    cr, cs = code_matrix(real, layout), code_matrix(synthetic, layout)
    ncols = max(1, min(ncols, len(layout)))
    nrows = math.ceil(len(layout) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(figsize_per_panel[0] * ncols, figsize_per_panel[1] * nrows),
                             squeeze=False)
    for j, (c, ax) in enumerate(zip(layout, axes.ravel(), strict=False)):
        k = c.n_codes
        p = np.bincount(cr[:, j], minlength=k) / max(len(cr), 1)
        q = np.bincount(cs[:, j], minlength=k) / max(len(cs), 1)
        tvd = 0.5 * np.abs(p - q).sum()
        labels = c.labels()
        if c.kind == "numeric":
            nb = len(c.edges) - 1
            centers = np.arange(nb)
            ax.bar(centers - 0.2, p[:nb], width=0.4, label="real", color="#4c72b0")
            ax.bar(centers + 0.2, q[:nb], width=0.4, label="synthetic", color="#dd8452")
            ticks = np.linspace(0, nb - 1, min(nb, 5)).round().astype(int)
            ax.set_xticks(ticks)
            ax.set_xticklabels([f"{c.edges[t]:.3g}" for t in ticks], fontsize=7)
        else:
            order = np.argsort(-p[: len(c.categories)])[:max_categories]
            pos = np.arange(len(order))
            ax.bar(pos - 0.2, p[order], width=0.4, label="real", color="#4c72b0")
            ax.bar(pos + 0.2, q[order], width=0.4, label="synthetic", color="#dd8452")
            ax.set_xticks(pos)
            ax.set_xticklabels([labels[i][:10] for i in order], rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{c.name} (TVD {tvd:.3f})", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.ravel()[len(layout):]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_association_difference(real, synthetic, schema=None, *, columns=None, ax=None, cmap: str = "Reds"):
    """Heat map of the absolute difference of the mixed association matrices (real vs synthetic).

    See :func:`skdpgen.metrics.association_matrix` for what is compared (Pearson correlation,
    Cramer's V, correlation ratio).  Colour scale fixed to [0, 1].
    """
    plt = _pyplot()
    diff = association_difference(real, synthetic, schema, columns=columns)
    if ax is None:
        size = max(4.0, 0.35 * len(diff) + 2.0)
        fig, ax = plt.subplots(figsize=(size + 1.0, size))
    else:
        fig = ax.figure
    im = ax.imshow(diff.to_numpy(), vmin=0.0, vmax=1.0, cmap=cmap)
    ax.set_xticks(range(len(diff)))
    ax.set_yticks(range(len(diff)))
    ax.set_xticklabels(diff.columns, rotation=90, fontsize=7)
    ax.set_yticklabels(diff.index, fontsize=7)
    upper = diff.to_numpy()[np.triu_indices(len(diff), k=1)]
    mean = float(np.nanmean(upper)) if upper.size else 0.0
    ax.set_title(f"|association(real) - association(synthetic)|, mean {mean:.3f}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_privacy_utility(search, *, param: str = "epsilon", ceiling: float | None = None, ax=None,
                         score_label: str = "score", logx: bool = True):
    """Mean test score (with one standard deviation) against a parameter, from a grid search.

    Parameters
    ----------
    search : fitted GridSearchCV, its ``cv_results_`` dict, or a DataFrame
        With columns ``param_<param>``, ``mean_test_score`` (and optionally ``std_test_score``).
        A DataFrame may instead have columns ``<param>``, ``score`` (and ``std``).
    param : str, default="epsilon"
        The grid parameter on the x axis (the other parameters, if any, are drawn as separate
        lines).
    ceiling : float, optional
        Drawn as a horizontal line: the score of the same downstream model trained on real data.
    """
    plt = _pyplot()
    results = getattr(search, "cv_results_", search)
    df = pd.DataFrame(results)
    if f"param_{param}" in df:
        x_col, y_col, s_col = f"param_{param}", "mean_test_score", "std_test_score"
    elif param in df:
        x_col, y_col, s_col = param, "score", "std"
    else:
        raise ValueError(f"no column 'param_{param}' or '{param}' in the results")
    if y_col not in df:
        raise ValueError(f"no column {y_col!r} in the results")
    others = [c for c in df.columns if c.startswith("param_") and c != x_col]
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.0, 3.5))
    else:
        fig = ax.figure
    groups = df.groupby([df[c].astype(str) for c in others]) if others else [("", df)]
    for key, g in groups:
        g = g.assign(_x=g[x_col].astype(float)).sort_values("_x")
        label = ", ".join(f"{o[6:]}={k}" for o, k in zip(others, np.atleast_1d(key), strict=False)) or "synthetic"
        y = g[y_col].astype(float).to_numpy()
        ax.plot(g["_x"], y, marker="o", label=label)
        if s_col in g:
            s = g[s_col].astype(float).to_numpy()
            ax.fill_between(g["_x"], y - s, y + s, alpha=0.2)
    if ceiling is not None:
        ax.axhline(ceiling, color="k", ls="--", lw=1, label="real data (ceiling)")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(param)
    ax.set_ylabel(score_label)
    ax.set_title("privacy-utility curve", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
