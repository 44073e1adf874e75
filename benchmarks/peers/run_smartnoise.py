"""Fit one OpenDP smartnoise-synth synthesizer on a benchmark table; write synthetic CSV + timing JSON.

Run with the PEERS virtual environment (smartnoise-synth 1.0.8, opacus 0.14, torch 2.13.0 pinned),
never with skdpgen's (see ../shared/PEERS.md)::

    /work/.venv-peers/bin/python benchmarks/peers/run_smartnoise.py --dataset adult --synth mst \
        --epsilon 1 --seed 0

One fit per process, so ``ru_maxrss`` is this fit's peak resident memory.  Continuous columns get
the PUBLIC bounds of ``benchmarks/tables.py`` (``BinTransformer(lower, upper, bins=20)`` for the
marginal-based MST / AIM, ``MinMaxTransformer(lower, upper)`` for the GANs) and
``preprocessor_eps=0``, so no budget goes to bounds.  Categorical columns are left to smartnoise's
own inference (its label / one-hot transformers read the category list from the rows, as in its
documented usage).  Missing categorical values are written as the string ``"(missing)"`` before
fitting and turned back into missing values after sampling.  The synthetic table has as many rows
as the training split (or ``--n-samples``).

Outputs in ``--out`` (default ``benchmarks/_out/peers``): ``{dataset}__{name}__eps{eps}__seed{seed}.csv``
and ``.json`` (fit/sample seconds, peak RSS, settings, ``status`` "ok" / "timeout" / "error").
For MST two tables come from the same fit: ``mst_round`` (smartnoise's default sampler, mbi's
randomised rounding) and ``mst_iid`` (rows drawn i.i.d. from the same fitted model,
``synthetic_data(method="sample")``: no extra privacy cost).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tables  # noqa: E402

MISSING = "(missing)"


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def train_frame(dataset: str, subsample: int | None, seed: int):
    Xtr, ytr, _, _, schema = tables.LOADERS[dataset]()
    schema = dict(schema)
    target = schema.pop("__target__")
    df = Xtr.assign(**{target: np.asarray(ytr)}).reset_index(drop=True)
    if subsample and subsample < len(df):
        df = df.sample(n=subsample, random_state=seed).reset_index(drop=True)
    return df, schema, target


def log_scaled(spec: dict) -> bool:
    """skdpgen's public rule for a log scale: lo >= 0 and hi >= 1000 max(lo, 1) (bounds only)."""
    if spec["type"] not in ("integer", "continuous") or spec.get("scale", "auto") == "linear":
        return spec.get("scale") == "log"
    lo, hi = spec["bounds"]
    return lo >= 0 and hi >= 1000 * max(lo, 1)


def to_log(df: pd.DataFrame, schema: dict) -> tuple[pd.DataFrame, dict]:
    """Map log-scaled columns to log1p(x - lo) (clipped to the bounds) and their bounds alike."""
    df, schema = df.copy(), {k: dict(v) for k, v in schema.items()}
    for col, spec in schema.items():
        if log_scaled(spec):
            lo, hi = spec["bounds"]
            df[col] = np.log1p(np.clip(df[col].astype(float), lo, hi) - lo)
            spec["bounds"] = [0.0, float(np.log1p(hi - lo))]
            spec["type"] = "continuous"
            spec["_log_lo"] = lo
    return df, schema


def from_log(df: pd.DataFrame, schema: dict) -> pd.DataFrame:
    df = df.copy()
    for col, spec in schema.items():
        if "_log_lo" in spec and col in df:
            df[col] = np.expm1(pd.to_numeric(df[col], errors="coerce")) + spec["_log_lo"]
    return df


def transformers(schema: dict, style: str, df: pd.DataFrame):
    from snsynth.transform import BinTransformer, MinMaxTransformer

    constraints, cats, conts = {}, [], []
    for col, spec in schema.items():
        if spec["type"] in ("integer", "continuous"):
            lo, hi = spec["bounds"]
            nullable = bool(df[col].isna().any()) or spec.get("nullable", False)
            if style == "cube":
                constraints[col] = BinTransformer(lower=lo, upper=hi, bins=20, nullable=nullable)
            else:
                constraints[col] = MinMaxTransformer(lower=lo, upper=hi, nullable=nullable)
            conts.append(col)
        else:
            cats.append(col)
    return constraints, cats, conts


def prepare(df: pd.DataFrame, cats: list[str]) -> pd.DataFrame:
    out = df.copy()
    for c in cats:
        out[c] = out[c].astype(object).where(out[c].notna(), MISSING)
    return out


def restore(df: pd.DataFrame, cats: list[str]) -> pd.DataFrame:
    out = df.copy()
    for c in cats:
        if c in out:
            out[c] = out[c].where(out[c].astype(str) != MISSING, None)
    return out


def _mst_iid(synth, n: int) -> pd.DataFrame:
    data = synth.synthesizer.synthetic_data(rows=n, method="sample")
    decompressed = synth.undo_compress_fn(data)
    rows = [tuple(t[1:]) for t in decompressed.df.itertuples()]
    return synth._transformer.inverse_transform(rows)


def make(name: str, epsilon: float, args):
    from snsynth import Synthesizer

    if name == "mst":
        return Synthesizer.create("mst", epsilon=epsilon, delta=args.delta), "cube", {}
    if name == "aim":
        kw = {"rounds": args.aim_rounds, "max_model_size": args.aim_max_model_size}
        return Synthesizer.create("aim", epsilon=epsilon, delta=args.delta, **kw), "cube", kw
    if name == "dpctgan":
        kw = {"epochs": args.epochs, "batch_size": args.batch_size, "cuda": False, "verbose": False}
        return Synthesizer.create("dpctgan", epsilon=epsilon, delta=args.delta, **kw), "gan", kw
    if name == "patectgan":
        kw = {"epochs": args.epochs, "batch_size": args.batch_size, "cuda": False, "verbose": False}
        return Synthesizer.create("patectgan", epsilon=epsilon, delta=args.delta, **kw), "gan", kw
    raise ValueError(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, choices=sorted(tables.LOADERS))
    ap.add_argument("--synth", required=True, choices=["mst", "aim", "dpctgan", "patectgan"])
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subsample", type=int, default=None, help="fit on this many training rows")
    ap.add_argument("--n-samples", type=int, default=None)
    ap.add_argument("--time-limit", type=int, default=900, help="seconds for the fit (SIGALRM)")
    ap.add_argument("--aim-rounds", type=int, default=None)
    ap.add_argument("--aim-max-model-size", type=float, default=80)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--log-scale", action="store_true",
                    help="bin / scale columns whose public bounds span >= 3 orders of magnitude on log1p(x - lo), "
                         "skdpgen's rule (names get the suffix _log)")
    ap.add_argument("--out", type=Path, default=HERE.parent / "_out" / "peers")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    random.seed(args.seed)
    np.random.seed(args.seed)  # noqa: NPY002 - the peers draw from the global generator
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    df, schema, target = train_frame(args.dataset, args.subsample, args.seed)
    n_out = args.n_samples or len(df)
    synth, style, settings = make(args.synth, args.epsilon, args)
    fit_df, fit_schema = to_log(df, schema) if args.log_scale else (df, schema)
    constraints, cats, conts = transformers(fit_schema, style, fit_df)
    data = prepare(fit_df, cats)
    suffix = "_log" if args.log_scale else ""
    record = {"library": "smartnoise-synth", "synth": args.synth, "dataset": args.dataset,
              "epsilon": args.epsilon, "delta": args.delta, "seed": args.seed, "train_rows": len(df),
              "subsample": args.subsample, "settings": settings, "time_limit_s": args.time_limit,
              "target": target, "log_scale": bool(args.log_scale)}
    stem = f"{args.dataset}__{{name}}__eps{args.epsilon:g}__seed{args.seed}"
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(args.time_limit)
    start, cpu0 = time.perf_counter(), time.process_time()
    try:
        synth.fit(data, transformer=constraints, categorical_columns=cats, continuous_columns=conts,
                  preprocessor_eps=0.0, nullable=bool(data.isna().any().any()))
        signal.alarm(0)
        record["fit_s"] = time.perf_counter() - start
        record["fit_cpu_s"] = time.process_time() - cpu0
        record["status"] = "ok"
    except _Timeout:
        record.update(status="timeout", fit_s=time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - record any failure of the peer
        signal.alarm(0)
        record.update(status="error", fit_s=time.perf_counter() - start,
                      error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-2000:])
    outputs = {}
    if record["status"] == "ok":
        samplers = {"mst_round" + suffix: lambda n: synth.sample(n),
                    "mst_iid" + suffix: lambda n: _mst_iid(synth, n)} \
            if args.synth == "mst" else {args.synth + suffix: lambda n: synth.sample(n)}
        for name, draw in samplers.items():
            t0 = time.perf_counter()
            fake = draw(n_out)
            fake = pd.DataFrame(fake, columns=list(df.columns)) if not isinstance(fake, pd.DataFrame) else fake
            fake = restore(fake, cats)
            if args.log_scale:
                fake = from_log(fake, fit_schema)
            path = args.out / (stem.format(name=name) + ".csv")
            fake.to_csv(path, index=False)
            outputs[name] = {"csv": path.name, "sample_s": time.perf_counter() - t0}
    else:
        outputs = {("mst_round" if args.synth == "mst" else args.synth) + suffix: {}}
        if args.synth == "mst":
            outputs["mst_iid" + suffix] = {}
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record["torch"] = torch.__version__
    record["pid"] = os.getpid()
    for name, extra in outputs.items():
        rec = dict(record, name=name, **extra)
        (args.out / (stem.format(name=name) + ".json")).write_text(json.dumps(rec, indent=1))
    print(json.dumps({k: record[k] for k in ("synth", "dataset", "status", "fit_s", "peak_rss_mb")}))


if __name__ == "__main__":
    main()
