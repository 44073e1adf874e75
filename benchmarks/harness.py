"""Benchmark harness: any ``fit(df) -> sample(n)`` synthesizer, on the benchmark tables, one protocol.

A synthesizer enters through a factory ``make(epsilon, seed, schema) -> object`` whose object has
``fit(df)`` (the training table, target column included) and ``sample(n) -> DataFrame`` (same
columns).  :data:`SYNTHESIZERS` registers skdpgen's estimators; peers (smartnoise-synth) run in
their own virtual environment (``benchmarks/peers/run_smartnoise.py``) and their synthetic CSVs are
evaluated here with the same code (:func:`evaluate_peer_outputs`).

Protocol of one run (dataset, synthesizer, epsilon, seed), in a fresh subprocess so that its peak
resident memory (``ru_maxrss``) is its own:

1. load the fixed train / test split and the PUBLIC schema of ``benchmarks/tables.py``;
2. ``fit`` on the training table (timed: wall clock), ``sample`` as many rows as the training
   table, record the peak RSS;
3. utility: ``HistGradientBoostingClassifier`` (``skdpgen.metrics.default_classifier``) trained on
   the synthetic rows, ROC-AUC (``predict_proba``) on the real test split; the ceiling trains it on
   the real training rows;
4. fidelity against the real training table, binned over the public bounds: mean 1-way TVD
   (20 bins), mean 2-way TVD (10 bins), mean absolute association difference, detection ROC-AUC
   (3-fold HistGradientBoosting on at most 10,000 rows of each; on raw values and on bin codes);
5. privacy heuristic: share of synthetic rows closer to a training row than to a test row (DCR).

Raw records go to ``benchmarks/_out/harness/*.json``; :func:`write_markdown` aggregates them
(median and range over seeds) into ``benchmarks/results_harness.md``.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "_out" / "harness"
PEERS_OUT = HERE / "_out" / "peers"
sys.path.insert(0, str(HERE))


# ---------------------------------------------------------------------------------------------
# synthesizers


class ClassConditional:
    """``fit(df)`` / ``sample(n)`` around a class-conditional estimator (``fit(X, y)``,
    ``sample(n, return_y=True)``), e.g. :class:`skdpgen.DPMMDSynthesizer`."""

    def __init__(self, estimator, target: str):
        self.estimator = estimator
        self.target = target

    def fit(self, df):
        X = df.drop(columns=self.target)
        self.estimator.fit(X, df[self.target])
        return self

    def sample(self, n: int, random_state=None):
        X, y = self.estimator.sample(n, random_state=random_state, return_y=True)
        return X.assign(**{self.target: y.to_numpy()})


class WholeTable:
    """``fit(df)`` / ``sample(n)`` for an estimator that models the target as one more column."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, df):
        self.estimator.fit(df)
        return self

    def sample(self, n: int, random_state=None):
        return self.estimator.sample(n, random_state=random_state)


def make_dpmmd(epsilon: float, seed: int, schema: dict, **params):
    """DPMMDSynthesizer with its defaults, class-conditional on the target (as in RESULTS.md)."""
    from skdpgen import DPMMDSynthesizer

    return ClassConditional(DPMMDSynthesizer(epsilon=epsilon, delta=1e-5, schema=schema, random_state=seed,
                                             **params), schema["__target__"])


def make_dpflow(epsilon: float, seed: int, schema: dict, **params):
    """DPFlowSynthesizer with its defaults at run time (the target is one more column of the flow)."""
    from skdpgen import DPFlowSynthesizer

    sch = {k: v for k, v in schema.items() if k != "__target__"}
    return WholeTable(DPFlowSynthesizer(epsilon=epsilon, delta=1e-5, schema=sch, random_state=seed, **params))


SYNTHESIZERS: dict[str, Callable] = {"skdpgen.DPMMD": make_dpmmd, "skdpgen.DPFlow": make_dpflow}


# ---------------------------------------------------------------------------------------------
# evaluation


def load(dataset: str):
    import tables

    Xtr, ytr, Xte, yte, schema = tables.LOADERS[dataset]()
    target = schema["__target__"]
    train = Xtr.assign(**{target: ytr.to_numpy()}).reset_index(drop=True)
    test = Xte.assign(**{target: yte.to_numpy()}).reset_index(drop=True)
    return train, test, schema


def _align(fake, train):
    """Synthetic table in the training table's column order, with the training dtypes where they cast."""
    import pandas as pd

    fake = fake[list(train.columns)].copy()
    for c in train.columns:
        if str(fake[c].dtype) == str(train[c].dtype):
            continue
        if pd.api.types.is_numeric_dtype(train[c]) and not pd.api.types.is_numeric_dtype(fake[c]):
            fake[c] = pd.to_numeric(fake[c], errors="coerce")
        elif not pd.api.types.is_numeric_dtype(train[c]) and pd.api.types.is_numeric_dtype(fake[c]):
            fake[c] = fake[c].astype(object).where(fake[c].notna(), None)
    return fake


def ceiling(dataset: str, seed: int = 0) -> float:
    """ROC-AUC of the TSTR classifier trained on the real training rows (cached per dataset)."""
    path = OUT / f"ceiling__{dataset}.json"
    if path.exists():
        return json.loads(path.read_text())["real_roc_auc"]
    train, test, schema = load(dataset)
    value = _tstr(train, train, test, schema["__target__"], seed)
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dataset": dataset, "real_roc_auc": value}))
    return value


def _tstr(fake, train, test, target: str, seed: int) -> float:
    import numpy as np
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    from skdpgen.metrics import default_classifier
    from skdpgen.metrics.utility import _as_object_frame

    X, y = _as_object_frame(fake.drop(columns=target)), fake[target].to_numpy()
    Xte, yte = _as_object_frame(test.drop(columns=target)), test[target].to_numpy()
    ok = ~_isna(y)
    X, y = X[ok], y[ok]
    pos = sorted(set(train[target].dropna().tolist()), key=str)[-1] if len(set(train[target])) == 2 else None
    if pos is None:
        raise ValueError("the harness's TSTR is for binary targets")
    labels = np.array([_label(v) for v in y])
    if np.unique(labels).size < 2:
        return 0.5
    model = default_classifier(X, seed)
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(X, labels)
        proba = model.predict_proba(Xte)
    col = list(model.classes_).index(_label(pos)) if _label(pos) in model.classes_ else None
    if col is None:
        return 0.5
    return float(roc_auc_score(np.array([_label(v) for v in yte]) == _label(pos), proba[:, col]))


def _label(v) -> str:
    """Class labels compared as text, with 1.0 and 1 the same label."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _isna(a):
    import pandas as pd

    return pd.isna(pd.Series(a)).to_numpy()


def evaluate_table(dataset: str, fake, seed: int = 0) -> dict:
    """The harness's metrics of one synthetic table (see the module docstring)."""
    import numpy as np

    from skdpgen.metrics import (
        association_difference,
        detection_auc,
        distance_to_closest_record,
        marginal_tvd,
        pairwise_tvd,
    )

    train, test, schema = load(dataset)
    target = schema["__target__"]
    fake = _align(fake, train)
    t0 = time.perf_counter()
    diff = association_difference(train, fake, schema).to_numpy()
    rec = {
        "tstr_roc_auc": _tstr(fake, train, test, target, seed),
        "real_roc_auc": ceiling(dataset),
        "tvd_1way": float(marginal_tvd(train, fake, schema).mean()),
        "tvd_2way": float(pairwise_tvd(train, fake, schema, n_bins=10)["tvd"].mean()),
        "assoc_diff": float(np.nanmean(diff[np.triu_indices_from(diff, k=1)])),
        "detection_auc": detection_auc(train, fake, schema, max_rows=10_000, random_state=seed),
        "detection_auc_binned": detection_auc(train, fake, schema, max_rows=10_000, random_state=seed,
                                              binned=True),
        "dcr_share_closer_to_train": distance_to_closest_record(fake, train, test, schema, max_rows=5000,
                                                                random_state=seed)["share_closer_to_train"],
        "synthetic_rows": len(fake),
    }
    rec["eval_s"] = time.perf_counter() - t0
    return rec


# ---------------------------------------------------------------------------------------------
# runs


def run_child(synth: str, dataset: str, epsilon: float, seed: int, params: dict) -> dict:
    """One run in THIS process (called in a fresh subprocess by :func:`run`)."""
    import torch

    torch.set_num_threads(1)
    train, _, schema = load(dataset)
    model = SYNTHESIZERS[synth](epsilon, seed, schema, **params)
    start, cpu0 = time.perf_counter(), time.process_time()
    model.fit(train)
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu0
    t0 = time.perf_counter()
    fake = model.sample(len(train), random_state=seed)
    sample_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rec = {"library": "skdpgen", "synth": synth, "name": synth, "dataset": dataset, "epsilon": epsilon,
           "seed": seed, "params": params, "status": "ok", "fit_s": fit_s, "fit_cpu_s": fit_cpu_s, "sample_s": sample_s,
           "peak_rss_mb": peak, "train_rows": len(train)}
    est = getattr(model, "estimator", None)
    if hasattr(est, "get_params"):
        rec["estimator_params"] = {k: v for k, v in est.get_params().items()
                                   if isinstance(v, (int, float, str, bool, type(None), tuple, list))
                                   and k not in ("schema",)}
    report = getattr(est, "privacy_report_", None)
    if isinstance(report, dict) and "epsilon" in report:
        rec["spent_epsilon"] = float(report["epsilon"])
    csv_dir = OUT / "csv"
    csv_dir.mkdir(parents=True, exist_ok=True)
    fake.to_csv(csv_dir / f"{dataset}__{synth}__eps{epsilon:g}__seed{seed}.csv.gz", index=False)
    rec.update(evaluate_table(dataset, fake, seed))
    return rec


def run(synth: str, dataset: str, epsilon: float, seed: int, params: dict | None = None,
        timeout: float | None = None) -> dict:
    """Run one configuration in a fresh subprocess; write and return its JSON record."""
    params = params or {}
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"{dataset}__{synth}__eps{epsilon:g}__seed{seed}"
    if params:
        tag += "__" + "_".join(f"{k}-{v}" for k, v in sorted(params.items()))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(
        {"synth": synth, "dataset": dataset, "epsilon": epsilon, "seed": seed, "params": params})]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, PYTHONWARNINGS="ignore"))
        if proc.returncode == 0:
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
        else:
            rec = {"synth": synth, "name": synth, "dataset": dataset, "epsilon": epsilon, "seed": seed,
                   "params": params, "status": "error", "error": proc.stderr[-3000:]}
    except subprocess.TimeoutExpired:
        rec = {"synth": synth, "name": synth, "dataset": dataset, "epsilon": epsilon, "seed": seed,
               "params": params, "status": "timeout", "fit_s": time.perf_counter() - start}
    rec["library"] = "skdpgen"
    rec["date"] = time.strftime("%Y-%m-%d")
    (OUT / f"{tag}.json").write_text(json.dumps(rec, indent=1))
    return rec


def evaluate_peer_outputs(pattern: str = "*.json", redo: bool = False) -> list[dict]:
    """Evaluate every peer CSV under ``benchmarks/_out/peers`` (records written to ``_out/harness``)."""
    import pandas as pd

    out = []
    OUT.mkdir(parents=True, exist_ok=True)
    for meta_path in sorted(PEERS_OUT.glob(pattern)):
        meta = json.loads(meta_path.read_text())
        dest = OUT / f"peer__{meta_path.name}"
        if dest.exists() and not redo:
            out.append(json.loads(dest.read_text()))
            continue
        rec = {k: meta.get(k) for k in ("library", "synth", "name", "dataset", "epsilon", "seed", "status",
                                        "fit_s", "fit_cpu_s", "peak_rss_mb", "train_rows", "subsample", "settings",
                                        "time_limit_s", "error")}
        if meta.get("status") == "ok" and meta.get("csv"):
            fake = pd.read_csv(PEERS_OUT / meta["csv"])
            rec.update(evaluate_table(meta["dataset"], fake, int(meta["seed"])))
        rec["date"] = time.strftime("%Y-%m-%d")
        dest.write_text(json.dumps(rec, indent=1))
        out.append(rec)
    return out


# ---------------------------------------------------------------------------------------------
# markdown

_METRICS = [("tstr_roc_auc", "TSTR ROC-AUC", "{:.3f}"), ("tvd_1way", "1-way TVD", "{:.3f}"),
            ("tvd_2way", "2-way TVD", "{:.3f}"), ("assoc_diff", "assoc. diff", "{:.3f}"),
            ("detection_auc", "detection AUC", "{:.3f}"), ("detection_auc_binned", "detection AUC (binned)",
                                                             "{:.3f}"),
            ("dcr_share_closer_to_train", "DCR closer-to-train", "{:.3f}"), ("fit_s", "fit wall (s)", "{:.0f}"),
            ("fit_cpu_s", "fit CPU (s)", "{:.0f}"),
            ("peak_rss_mb", "peak RSS (MB)", "{:.0f}")]


ORDER = ["skdpgen.DPMMD", "skdpgen.DPFlow", "mst_iid_log", "mst_round_log", "mst_iid", "mst_round", "aim",
         "dpctgan", "patectgan", "diffprivlib_nb"]


def _cell(values: list[float], fmt: str) -> str:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def load_records() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json")) if not p.name.startswith("ceiling")]


def markdown_tables(records: list[dict], order: list[str] | None = None) -> str:
    """One table per epsilon: rows (dataset, synthesizer), medians (range) over seeds."""
    groups: dict = {}
    for r in records:
        key = (r["epsilon"], r["dataset"], r.get("name") or r["synth"])
        groups.setdefault(key, []).append(r)
    datasets = TABLE_DATASETS
    present = {k[2] for k in groups}
    names = [n for n in (order or ORDER) if n in present] + sorted(present - set(order or ORDER))
    lines = []
    for eps in sorted({k[0] for k in groups}):
        lines += [f"### epsilon = {eps:g}", "",
                  "| data set | synthesizer | seeds | " + " | ".join(m[1] for m in _METRICS) + " | real ceiling |",
                  "|" + "---|" * (len(_METRICS) + 4)]
        for d in datasets:
            for n in names:
                rs = groups.get((eps, d, n))
                if not rs:
                    continue
                ok = [r for r in rs if r.get("status") == "ok"]
                bad = [r for r in rs if r.get("status") != "ok"]
                seeds = ",".join(str(r["seed"]) for r in ok)
                if bad:
                    seeds += " " + ", ".join(f"{r['status']} (seed {r['seed']}, "
                                             f"{r.get('fit_s') or 0:.0f} s)" for r in bad)
                cells = [_cell([r.get(m) for r in ok], fmt) for m, _, fmt in _METRICS]
                ceil = _cell([r.get("real_roc_auc") for r in ok], "{:.3f}")
                lines.append(f"| {d} | {n} | {seeds} | " + " | ".join(cells) + f" | {ceil} |")
        lines.append("")
    return "\n".join(lines)


TABLE_DATASETS = ["adult", "credit_card_default", "bank_marketing", "german_credit", "cervical_cancer"]


def curve_tables(records: list[dict], metric: str = "tstr_roc_auc", fmt: str = "{:.3f}",
                 order: list[str] | None = None) -> str:
    """Privacy-utility summary: per data set, one row per synthesizer, one column per epsilon.

    Cells are the median over the seeds that finished, with their number in brackets.
    """
    groups: dict = {}
    for r in records:
        if r.get("status") == "ok" and r["dataset"] in TABLE_DATASETS:
            groups.setdefault((r["dataset"], r.get("name") or r["synth"]), {}).setdefault(r["epsilon"], []).append(r)
    epsilons = sorted({e for v in groups.values() for e in v})
    present = {k[1] for k in groups}
    names = [n for n in (order or ORDER) if n in present] + sorted(present - set(order or ORDER))
    head = "| data set | synthesizer | " + " | ".join(f"epsilon = {e:g}" for e in epsilons) + " |"
    lines = [head, "|" + "---|" * (len(epsilons) + 2)]
    for d in TABLE_DATASETS:
        for n in names:
            by_eps = groups.get((d, n))
            if not by_eps:
                continue
            cells = []
            for e in epsilons:
                vals = [r.get(metric) for r in by_eps.get(e, []) if r.get(metric) is not None]
                cells.append(f"{fmt.format(statistics.median(vals))} ({len(vals)})" if vals else "-")
            lines.append(f"| {d} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, header: str, records: list[dict] | None = None, order=None) -> str:
    records = load_records() if records is None else records
    records = [r for r in records if r.get("dataset") in TABLE_DATASETS]
    summary = ("## Privacy-utility summary\n\nTSTR ROC-AUC, median over seeds (number of seeds that finished):\n\n"
               + curve_tables(records, order=order)
               + "\nMean 2-way marginal TVD (lower is better), same layout:\n\n"
               + curve_tables(records, "tvd_2way", order=order) + "\n## All metrics, by epsilon\n\n")
    text = header.rstrip() + "\n\n" + summary + markdown_tables(records, order)
    path.write_text(text)
    return text


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        spec = json.loads(sys.argv[2])
        print(json.dumps(run_child(spec["synth"], spec["dataset"], spec["epsilon"], spec["seed"], spec["params"])))
    else:
        sys.exit("use benchmarks/run_benchmarks.py")
